//! The screen a canvas is drawn for: its size in CSS pixels times the
//! device pixel ratio is the size of its backing store, so figures are
//! sharp on HiDPI screens; a change of either (window resized, page zoomed,
//! window moved to another screen) calls back so the figure is redrawn.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function watch_canvas(el, cb) {
  const ro = new ResizeObserver(() => cb());
  ro.observe(el);
  // A media query on the current ratio fires once when it changes; re-arm it each time.
  let mq = null;
  const onRatio = () => { cb(); arm(); };
  const arm = () => {
    mq = matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    mq.addEventListener('change', onRatio, { once: true });
  };
  arm();
  return () => { ro.disconnect(); if (mq) mq.removeEventListener('change', onRatio); };
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn watch_canvas(
        el: &web_sys::HtmlCanvasElement,
        cb: &Closure<dyn FnMut()>,
    ) -> Result<js_sys::Function, JsValue>;
}

/// The device pixel ratio (1 where there is no window).
pub fn device_pixel_ratio() -> f64 {
    web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .filter(|r| *r > 0.0)
        .unwrap_or(1.0)
}

/// Calls `changed` whenever the canvas's CSS size or the device pixel ratio
/// changes. Dropping the returned guard stops watching.
pub struct Watch {
    stop: Option<js_sys::Function>,
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.call0(&JsValue::NULL);
        }
    }
}

/// Starts watching `el` (where ResizeObserver is missing, nothing is watched and the figure keeps its first size).
pub fn watch(el: &web_sys::HtmlCanvasElement, changed: impl FnMut() + 'static) -> Watch {
    let callback = Closure::<dyn FnMut()>::new(changed);
    let stop = watch_canvas(el, &callback).ok();
    Watch {
        stop,
        _callback: callback,
    }
}

/// The backing-store scale for a canvas drawn at `logical_width` CSS pixels
/// of layout: its shown width in device pixels over the layout width.
pub fn backing_scale(client_width: i32, logical_width: u32) -> f64 {
    let shown = if client_width > 0 {
        client_width as f64
    } else {
        logical_width as f64
    };
    shown * device_pixel_ratio() / logical_width as f64
}
