//! Small helpers over the page's elements (ids are in `index.html`).

use wasm_bindgen::JsCast;
use web_sys::{Document, HtmlElement, HtmlInputElement, HtmlSelectElement, Window};

use super::AppError;
use crate::state::{self, Notice, State};

/// The browser window.
pub fn window() -> Window {
    web_sys::window().expect("the demo runs in a browser window")
}

/// The document.
pub fn document() -> Document {
    window().document().expect("a window has a document")
}

/// Milliseconds since page load.
pub fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// The element with `id`, as `T`.
pub fn get<T: JsCast>(id: &str) -> Result<T, AppError> {
    document()
        .get_element_by_id(id)
        .ok_or_else(|| AppError::Page(format!("element #{id} is missing from index.html")))?
        .dyn_into::<T>()
        .map_err(|_| AppError::Page(format!("element #{id} has an unexpected type")))
}

/// Sets the text of element `id` (ignored if missing).
pub fn set_text(id: &str, text: &str) {
    if let Some(e) = document().get_element_by_id(id) {
        e.set_text_content(Some(text));
    }
}

/// Shows or hides element `id`.
pub fn set_visible(id: &str, visible: bool) {
    if let Ok(e) = get::<HtmlElement>(id) {
        e.set_hidden(!visible);
    }
}

/// The value of input or select `id` ("" if missing).
pub fn value(id: &str) -> String {
    if let Ok(i) = get::<HtmlInputElement>(id) {
        return i.value();
    }
    if let Ok(s) = get::<HtmlSelectElement>(id) {
        return s.value();
    }
    String::new()
}

/// Sets the value of input or select `id`.
pub fn set_value(id: &str, v: &str) {
    if let Ok(i) = get::<HtmlInputElement>(id) {
        i.set_value(v);
    } else if let Ok(s) = get::<HtmlSelectElement>(id) {
        s.set_value(v);
    }
}

/// Fills the controls from a state.
pub fn show_state(s: &State) {
    set_value("model", s.model);
    set_value("sampler", s.sampler.name());
    set_value("steps", &s.steps.to_string());
    set_value("seed", &s.seed.to_string());
    set_value("temp", &s.temperature.to_string());
    set_value("t0", &s.t0.to_string());
    set_value("dir", s.direction.name());
    if let Some(n) = s.particles {
        set_value("particles", &n.to_string());
    }
    for (id, on) in [
        ("flow-indm", s.flow == state::FlowChoice::Indm),
        ("flow-baseline", s.flow == state::FlowChoice::Baseline),
    ] {
        if let Ok(b) = get::<HtmlElement>(id) {
            let _ = b.class_list().toggle_with_force("active", on);
            let _ = b.set_attribute("aria-pressed", if on { "true" } else { "false" });
        }
    }
}

/// Shows the 2D view or the translation view, and marks the active tab.
pub fn show_view(v: state::View) {
    let image = v == state::View::Image;
    set_visible("view-2d-panel", !image);
    set_visible("image-view", image);
    for (id, on) in [("view-2d", !image), ("view-image", image)] {
        if let Ok(b) = get::<HtmlElement>(id) {
            let _ = b.class_list().toggle_with_force("active", on);
            let _ = b.set_attribute("aria-pressed", if on { "true" } else { "false" });
        }
    }
}

/// The query the controls describe (`view`, `flow` and the gallery `image` come from
/// the current state: they are toggles and picks, not control values).
pub fn controls_query(view: state::View, flow: state::FlowChoice, image: Option<&str>) -> String {
    let enc = |id: &str| {
        js_sys::encode_uri_component(&value(id))
            .as_string()
            .unwrap_or_default()
    };
    // One seed for both views, read from the visible view's input.
    let seed = if view == state::View::Image {
        enc("tseed")
    } else {
        enc("seed")
    };
    let mut q = format!(
        "v={}&view={}&model={}&flow={}&sampler={}&steps={}&seed={seed}&temp={}&t0={}&dir={}&n={}\
         &tdir={}&method={}&it0={}&isteps={}",
        state::VERSION,
        view.name(),
        enc("model"),
        flow.name(),
        enc("sampler"),
        enc("steps"),
        enc("temp"),
        enc("t0"),
        enc("dir"),
        enc("particles"),
        enc("tdir"),
        enc("method"),
        enc("it0"),
        enc("isteps"),
    );
    if let Some(img) = image {
        q.push_str("&image=");
        q.push_str(
            &js_sys::encode_uri_component(img)
                .as_string()
                .unwrap_or_default(),
        );
    }
    q
}

/// Fills the translation view's controls from a state (`steps`: the steps in use).
pub fn show_translate_state(s: &State, steps: usize) {
    set_value("tdir", s.translate.direction.name());
    set_value("method", s.translate.method.name());
    set_value("it0", &s.translate.t0.to_string());
    set_text("it0-value", &format!("{:.2}", s.translate.t0));
    set_value("isteps", &steps.to_string());
    set_value("tseed", &s.seed.to_string());
    set_visible("it0-label", s.translate.method == state::Method::Sdedit);
    let current = crate::translate::gallery_id(s);
    for id in crate::translate::GALLERY {
        if let Ok(b) = get::<HtmlElement>(&format!("g-{id}")) {
            let _ = b.class_list().toggle_with_force("active", id == current);
        }
    }
}

/// Replaces the notice box's lines (hidden when empty) and mirrors them in
/// `window.indmNotices` for tests.
pub fn show_notices(lines: &[String]) {
    let Ok(boxed) = get::<HtmlElement>("notice") else {
        return;
    };
    boxed.set_inner_html("");
    let doc = document();
    for l in lines {
        if let Ok(li) = doc.create_element("li") {
            li.set_text_content(Some(l));
            let _ = boxed.append_child(&li);
        }
    }
    boxed.set_hidden(lines.is_empty());
    let arr = js_sys::Array::new();
    for l in lines {
        arr.push(&l.into());
    }
    let _ = js_sys::Reflect::set(&window(), &"indmNotices".into(), &arr);
}

/// Notice lines of parse notices.
pub fn notice_lines(notices: &[Notice]) -> Vec<String> {
    notices.iter().map(|n| format!("Link: {n}")).collect()
}

/// Writes the state into the address bar and the share link.
pub fn publish_state(s: &State) {
    let q = state::to_query(s);
    let w = window();
    let loc = w.location();
    let base = format!(
        "{}{}",
        loc.origin().unwrap_or_default(),
        loc.pathname().unwrap_or_default()
    );
    let url = format!("{base}?{q}");
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
    if let Ok(a) = get::<web_sys::HtmlAnchorElement>("share") {
        a.set_href(&url);
        a.set_text_content(Some(&url));
    }
}

/// Replaces `canvas` with a fresh copy (same id, size and attributes) and returns it.
pub fn replace_canvas(
    canvas: &web_sys::HtmlCanvasElement,
) -> Result<web_sys::HtmlCanvasElement, AppError> {
    let fresh: web_sys::HtmlCanvasElement = canvas
        .clone_node_with_deep(false)
        .map_err(|e| AppError::Page(super::js_err(e)))?
        .dyn_into()
        .map_err(|_| AppError::Page("canvas copy is not a canvas".into()))?;
    canvas
        .replace_with_with_node_1(&fresh)
        .map_err(|e| AppError::Page(super::js_err(e)))?;
    Ok(fresh)
}
