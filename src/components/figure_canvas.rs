//! One figure: a `FigureSpec` drawn on a canvas by the core's plotters routine
//! (the same one that writes SVG and PNG), its caption, exports (SVG, PNG at
//! 2× and 4×, CSV) and a link that shows the figure to someone else.

use crate::state::AppState;
use crate::web::export::{copy_to_clipboard, file_digest, page_address, save_png, save_text};
use crate::web::scaled_text::SvgSizedCanvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use plotters::prelude::IntoDrawingArea;
use plotters_canvas::CanvasBackend;
use rankscope_core::figures::draw::{draw_figure_framed, to_svg, PlotFrame};
use rankscope_core::figures::spec::FigureSpec;
use rankscope_core::figures::to_csv;
use rankscope_core::share::{encode_link, SharedFigure, SourceFile, RECOMMENDED_MAX_LINK_CHARS};
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
                let root = SvgSizedCanvas(backend).into_drawing_area();
                let result = draw_figure_framed(&root, &spec);
                frame.set_value(result.as_ref().ok().copied().flatten());
                error.set(
                    result
                        .err()
                        .map(|e| format!("could not draw the figure: {e}")),
                );
            }
            None => error.set(Some("this browser gave no 2D canvas".into())),
        }
    });
    let n_series = move || spec.with(|s| s.as_ref().map_or(0, |s| s.series.len()));
    let series_names = move || {
        spec.with(|s| {
            s.as_ref()
                .map(|s| {
                    s.series
                        .iter()
                        .map(|x| x.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        })
    };
    let svg = move || -> Option<String> {
        let spec = spec.get_untracked()?;
        to_svg(&spec, WIDTH, HEIGHT)
            .map_err(|e| error.set(Some(format!("could not export SVG: {e}"))))
            .ok()
    };
    let download_svg = move |_| {
        if let Some(svg) = svg() {
            save_text(&format!("{id}.svg"), &svg, "image/svg+xml");
        }
    };
    let download_png = move |scale: f64| {
        let Some(svg) = svg() else { return };
        spawn_local(async move {
            if let Err(e) =
                save_png(&format!("{id}@{scale}x.png"), &svg, WIDTH, HEIGHT, scale).await
            {
                error.set(Some(format!("could not export PNG: {e}")));
            }
        });
    };
    let download_csv = move |_| {
        if let Some(spec) = spec.get_untracked() {
            save_text(&format!("{id}.csv"), &to_csv(&spec), "text/csv");
        }
    };
    // The link, once made: shown in a read-only field so it can be copied by
    // hand where the clipboard is not allowed.
    let link = RwSignal::new(None::<String>);
    let link_note = RwSignal::new(None::<String>);
    let state = use_context::<AppState>();
    let copy_link = move |_| {
        let Some(spec) = spec.get_untracked() else {
            return;
        };
        spawn_local(async move {
            // Provenance: each source's size and a digest of its first MiB.
            let mut files = Vec::with_capacity(spec.sources.len());
            for name in &spec.sources {
                let size = state.and_then(|s| {
                    s.inventory.with_untracked(|inv| {
                        inv.files.iter().find(|f| &f.path == name).map(|f| f.size)
                    })
                });
                let digest = match state.and_then(|s| s.blob(name)) {
                    Some(blob) => file_digest(&blob).await,
                    None => None,
                };
                files.push(SourceFile {
                    name: name.clone(),
                    size: size.unwrap_or(0),
                    digest,
                });
            }
            let url = format!(
                "{}#{}",
                page_address(),
                encode_link(&SharedFigure::new(spec, files))
            );
            if url.len() > RECOMMENDED_MAX_LINK_CHARS {
                link.set(None);
                link_note.set(Some(format!(
                    "This figure's data make a link of {:.1} KB, over the 8 KB that mail and chat tools keep intact: use “Save session” (above) and send the file instead.",
                    url.len() as f64 / 1024.0
                )));
                return;
            }
            link.set(Some(url.clone()));
            link_note.set(Some(match copy_to_clipboard(&url).await {
                Ok(()) => format!("Link copied ({} characters). Anyone who opens it sees this figure; nothing else is shared.", url.len()),
                Err(e) => format!("The clipboard refused ({e}): copy the link below."),
            }));
        });
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let (Some(f), Some(el)) = (readout, canvas.get_untracked()) else {
            return;
        };
        let el: &web_sys::HtmlCanvasElement = &el;
        let scale = el.width() as f64 / (el.client_width().max(1) as f64);
        let (px, py) = (ev.offset_x() as f64 * scale, ev.offset_y() as f64 * scale);
        let text = frame
            .get_value()
            .and_then(|fr| fr.to_data(px, py))
            .and_then(|(x, _)| spec.with_untracked(|s| s.as_ref().and_then(|s| f(s, x))));
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
                </figcaption>
                <div class="figure-actions">
                    <button class="link copy-link" on:click=copy_link>"Copy link"</button>
                    " · download "
                    <button class="link export-svg" on:click=download_svg>"SVG"</button>
                    <button class="link export-png2" on:click=move |_| download_png(2.0)>"PNG 2×"</button>
                    <button class="link export-png4" on:click=move |_| download_png(4.0)>"PNG 4×"</button>
                    <button class="link export-csv" on:click=download_csv>"CSV"</button>
                </div>
                {move || link_note.get().map(|n| view! { <p class="link-note">{n}</p> })}
                {move || link.get().map(|l| view! { <input class="share-link" readonly value=l/> })}
            </Show>
            {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
        </figure>
    }
}
