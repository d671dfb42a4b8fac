//! Exports: the current view as PNG (`canvas.toBlob`), the trajectory animation as
//! WebM (`MediaRecorder` on `canvas.captureStream()` during a replay).

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, BlobEvent, HtmlCanvasElement, MediaRecorder, MediaRecorderOptions};

use super::{dom, js_err};

/// Offers `blob` as a download named `name`, and records its size in
/// `window.indmLastExport` (for tests).
fn download(blob: &Blob, name: &str) {
    let Ok(url) = web_sys::Url::create_object_url_with_blob(blob) else {
        return;
    };
    if let Ok(a) = dom::document().create_element("a") {
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", name);
        if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
            a.click();
        }
    }
    let info = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&info, &"name".into(), &name.into());
    let _ = js_sys::Reflect::set(&info, &"size".into(), &blob.size().into());
    let _ = js_sys::Reflect::set(&info, &"type".into(), &blob.type_().into());
    let _ = js_sys::Reflect::set(&dom::window(), &"indmLastExport".into(), &info);
    dom::set_text(
        "export-status",
        &format!("saved {name} ({:.0} KB)", blob.size() / 1024.0),
    );
}

/// Saves the canvas as a PNG (call right after rendering, in the same task).
pub fn png(canvas: &HtmlCanvasElement, name: &str) {
    let name = name.to_string();
    let cb = Closure::once_into_js(move |blob: JsValue| {
        if let Some(b) = blob.dyn_ref::<Blob>() {
            download(b, &name);
        } else {
            dom::set_text(
                "export-status",
                "PNG export failed: the canvas gave no image",
            );
        }
    });
    if let Err(e) = canvas.to_blob(cb.unchecked_ref()) {
        dom::set_text(
            "export-status",
            &format!("PNG export failed: {}", js_err(e)),
        );
    }
}

/// A WebM recording of the canvas in progress.
pub struct Recorder {
    rec: MediaRecorder,
}

impl Recorder {
    /// Starts recording `canvas`; the file is offered when [`Recorder::stop`] is called.
    pub fn start(canvas: &HtmlCanvasElement, name: &str) -> Result<Self, String> {
        let stream = canvas.capture_stream().map_err(js_err)?;
        let opts = MediaRecorderOptions::new();
        opts.set_mime_type("video/webm");
        let rec = MediaRecorder::new_with_media_stream_and_media_recorder_options(&stream, &opts)
            .map_err(js_err)?;
        let chunks: Rc<RefCell<Vec<Blob>>> = Rc::default();
        let c = chunks.clone();
        let on_data = Closure::<dyn FnMut(BlobEvent)>::new(move |e: BlobEvent| {
            if let Some(b) = e.data() {
                c.borrow_mut().push(b);
            }
        });
        rec.set_ondataavailable(Some(on_data.as_ref().unchecked_ref()));
        on_data.forget();
        let name = name.to_string();
        let on_stop = Closure::<dyn FnMut()>::new(move || {
            let parts = js_sys::Array::new();
            for b in chunks.borrow().iter() {
                parts.push(b);
            }
            let bag = web_sys::BlobPropertyBag::new();
            bag.set_type("video/webm");
            if let Ok(blob) = Blob::new_with_blob_sequence_and_options(&parts, &bag) {
                download(&blob, &name);
            }
        });
        rec.set_onstop(Some(on_stop.as_ref().unchecked_ref()));
        on_stop.forget();
        rec.start().map_err(js_err)?;
        dom::set_text("export-status", "recording WebM…");
        Ok(Recorder { rec })
    }

    /// Stops recording and offers the file.
    pub fn stop(self) {
        let _ = self.rec.stop();
    }
}
