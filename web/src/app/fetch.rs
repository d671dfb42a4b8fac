//! Model files: fetched with a progress indicator (streamed body), kept in memory for
//! the session; the browser's HTTP cache serves repeat visits.

use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Response};

use super::dom;
use super::{AppError, js_err};

/// Model file bytes already fetched this session, by path.
#[derive(Default)]
pub struct ModelCache {
    files: HashMap<String, Rc<Vec<u8>>>,
}

impl ModelCache {
    /// The bytes of `path`, fetched (with progress shown) unless already here.
    pub async fn get(&mut self, path: &str) -> Result<Rc<Vec<u8>>, AppError> {
        if let Some(b) = self.files.get(path) {
            return Ok(b.clone());
        }
        let bytes = Rc::new(fetch_with_progress(path).await?);
        self.files.insert(path.to_string(), bytes.clone());
        Ok(bytes)
    }
}

fn show_progress(path: &str, loaded: f64, total: Option<f64>) {
    if let Ok(p) = dom::get::<web_sys::HtmlProgressElement>("load-progress") {
        match total {
            Some(t) if t > 0.0 => {
                p.set_max(t);
                p.set_value(loaded);
            }
            _ => {
                let _ = p.remove_attribute("value");
            }
        }
    }
    let pct = total.map_or(String::new(), |t| {
        format!(" ({:.0}%)", 100.0 * loaded / t.max(1.0))
    });
    dom::set_text(
        "load-text",
        &format!("loading {path}: {:.0} KB{pct}", loaded / 1024.0),
    );
}

/// Fetches `path`, streaming the body so the progress bar moves.
pub async fn fetch_with_progress(path: &str) -> Result<Vec<u8>, AppError> {
    dom::set_visible("loading", true);
    show_progress(path, 0.0, None);
    let result = fetch_inner(path).await;
    dom::set_visible("loading", false);
    result
}

async fn fetch_inner(path: &str) -> Result<Vec<u8>, AppError> {
    let fetch_err = |e| AppError::Fetch {
        path: path.to_string(),
        reason: js_err(e),
    };
    let resp: Response = JsFuture::from(dom::window().fetch_with_str(path))
        .await
        .map_err(fetch_err)?
        .dyn_into()
        .map_err(|_| AppError::Page("fetch did not return a Response".into()))?;
    if !resp.ok() {
        return Err(AppError::Fetch {
            path: path.to_string(),
            reason: format!("HTTP {} {}", resp.status(), resp.status_text()),
        });
    }
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok());
    let Some(body) = resp.body() else {
        // No stream support: read it whole.
        let buf = JsFuture::from(resp.array_buffer().map_err(fetch_err)?)
            .await
            .map_err(fetch_err)?;
        return Ok(Uint8Array::new(&buf).to_vec());
    };
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| AppError::Page("no stream reader".into()))?;
    let mut out = Vec::with_capacity(total.unwrap_or(0.0) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(fetch_err)?;
        let done = Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = Reflect::get(&chunk, &"value".into()).map_err(fetch_err)?;
        out.extend(Uint8Array::new(&value).to_vec());
        show_progress(path, out.len() as f64, total);
    }
    Ok(out)
}
