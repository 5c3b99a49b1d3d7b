//! One figure: a `FigureSpec` drawn on a canvas by the core's plotters routine
//! (the same one that writes SVG and PNG), its caption, and an SVG download.

use leptos::prelude::*;
use plotters::prelude::IntoDrawingArea;
use plotters_canvas::CanvasBackend;
use rankscope_core::figures::draw::{draw_figure_framed, to_svg, PlotFrame};
use rankscope_core::figures::spec::FigureSpec;
use wasm_bindgen::JsCast;

/// Canvas size in pixels (the page scales it down on narrow screens).
const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

#[component]
pub fn FigureCanvas(
    /// DOM id of the figure (tests find it by this).
    id: &'static str,
    /// The figure to draw; `None` shows `empty_text`.
    spec: Signal<Option<FigureSpec>>,
    /// What to say when there is nothing to draw.
    empty_text: &'static str,
    /// Hover readout: given the figure and the data x under the pointer, a
    /// line shown below the canvas (`id`-readout).
    #[prop(optional)]
    readout: Option<fn(&FigureSpec, f64) -> Option<String>>,
) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let error = RwSignal::new(None::<String>);
    let frame = StoredValue::new(None::<PlotFrame>);
    let hover = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let Some(el) = canvas.get() else { return };
        let Some(spec) = spec.get() else { return };
        let el: web_sys::HtmlCanvasElement = el.unchecked_into();
        match CanvasBackend::with_canvas_object(el) {
            Some(backend) => {
                let root = backend.into_drawing_area();
                let result = draw_figure_framed(&root, &spec);
                frame.set_value(result.as_ref().ok().copied().flatten());
                error.set(result.err().map(|e| format!("could not draw the figure: {e}")));
            }
            None => error.set(Some("this browser gave no 2D canvas".into())),
        }
    });
    let n_series = move || spec.with(|s| s.as_ref().map_or(0, |s| s.series.len()));
    let series_names = move || spec.with(|s| s.as_ref().map(|s| s.series.iter().map(|x| x.name.clone()).collect::<Vec<_>>().join(", ")).unwrap_or_default());
    let download = move |_| {
        let Some(spec) = spec.get_untracked() else { return };
        match to_svg(&spec, WIDTH, HEIGHT) {
            Ok(svg) => save_text(&format!("{id}.svg"), &svg, "image/svg+xml"),
            Err(e) => error.set(Some(format!("could not export SVG: {e}"))),
        }
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let (Some(f), Some(el)) = (readout, canvas.get_untracked()) else { return };
        let el: &web_sys::HtmlCanvasElement = &el;
        let scale = el.width() as f64 / (el.client_width().max(1) as f64);
        let (px, py) = (ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale);
        let text = frame.get_value().and_then(|fr| fr.to_data(px, py)).and_then(|(x, _)| spec.with_untracked(|s| s.as_ref().and_then(|s| f(s, x))));
        hover.set(text);
    };
    view! {
        <figure id=id class="figure" data-series=n_series data-series-names=series_names>
            <Show
                when=move || spec.with(Option::is_some)
                fallback=move || view! { <p class="empty">{empty_text}</p> }
            >
                <canvas node_ref=canvas width=WIDTH height=HEIGHT on:mousemove=on_move on:mouseleave=move |_| hover.set(None)></canvas>
                {move || readout.is_some().then(|| view! {
                    <p class="readout" id=format!("{id}-readout")>{move || hover.get().unwrap_or_else(|| "hover the plot for exact values".into())}</p>
                })}
                <figcaption>
                    <span class="caption-text">
                        {move || spec.with(|s| s.as_ref().map(|s| s.caption.clone()).unwrap_or_default())}
                    </span>
                    <button class="link" on:click=download>"Download SVG"</button>
                </figcaption>
            </Show>
            {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
        </figure>
    }
}

/// Offers `text` as a file download (a Blob URL clicked, then revoked).
fn save_text(name: &str, text: &str, mime: &str) {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    if let Ok(a) = doc.create_element("a") {
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", name);
        if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
            a.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}
