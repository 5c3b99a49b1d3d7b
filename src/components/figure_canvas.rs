//! One figure: a `FigureSpec` drawn on a canvas by the core's plotters routine
//! (the same one that writes SVG and PNG), its caption, exports (SVG, PNG at
//! 2× and 4×, CSV) and a link that shows the figure to someone else. The
//! canvas's backing store is its shown size times the device pixel ratio
//! (sharp on HiDPI screens, redrawn when either changes), and the figure has a
//! text alternative: its title and caption, and its numbers as a table on demand.

use super::sortable::{sort_rows, SortBy, SortHeader, SortKey};
use crate::state::AppState;
use crate::view_state::ViewState;
use crate::web::export::{copy_to_clipboard, file_digest, page_address, save_png, save_text};
use crate::web::scaled_text::SvgSizedCanvas;
use crate::web::screen;
use crate::web::sources::FileHandle;
use leptos::prelude::*;
use leptos::task::spawn_local;
use plotters::prelude::IntoDrawingArea;
use plotters_canvas::CanvasBackend;
use rankscope_core::figures::draw::{draw_figure_framed, legend_names, to_svg, PlotFrame};
use rankscope_core::figures::spec::{FigureSpec, Scale, View};
use rankscope_core::figures::DynBackend;
use rankscope_core::figures::{format_number, to_csv};
use rankscope_core::inventory::FileKind;
use rankscope_core::share::{encode_link, SharedFigure, SourceFile, RECOMMENDED_MAX_LINK_CHARS};
use wasm_bindgen::JsCast;

/// The size a figure is laid out at, in CSS pixels (the page scales it down
/// on narrow screens; the backing store follows the shown size).
const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
/// The data table shows at most this many rows (the CSV has them all).
const TABLE_ROWS: usize = 2000;

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
    /// The figure has its own log-y control next to it: no second one here.
    #[prop(optional)]
    own_log_y: bool,
) -> impl IntoView {
    // What is drawn, exported and linked: the figure as the reader's view
    // (log axes, zoom) shows it.
    let views = ViewState::use_context();
    let built = spec;
    let spec = Signal::derive(move || {
        let view = views.get(id);
        built.with(|s| s.as_ref().map(|s| s.with_view(&view)))
    });
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let error = RwSignal::new(None::<String>);
    let frame = StoredValue::new(None::<PlotFrame>);
    let hover = RwSignal::new(None::<String>);
    // Bumped when the canvas's shown size or the pixel ratio changes.
    let resized = RwSignal::new(0u64);
    let watch = StoredValue::new_local(None::<screen::Watch>);
    Effect::new(move |_| {
        if let Some(el) = canvas.get() {
            let el: &web_sys::HtmlCanvasElement = &el;
            let seen = std::cell::Cell::new((el.client_width(), screen::device_pixel_ratio()));
            let target = el.clone();
            watch.set_value(Some(screen::watch(el, move || {
                let now = (target.client_width(), screen::device_pixel_ratio());
                if now != seen.get() {
                    seen.set(now);
                    resized.update(|n| *n += 1);
                }
            })));
        }
    });
    // The watch stops when the figure goes: dropping the stored guard disconnects it.
    Effect::new(move |_| {
        resized.track();
        let Some(el) = canvas.get() else { return };
        let Some(spec) = spec.get() else { return };
        let el: web_sys::HtmlCanvasElement = el.unchecked_into();
        let scale = screen::backing_scale(el.client_width(), WIDTH);
        el.set_width((WIDTH as f64 * scale).round() as u32);
        el.set_height((HEIGHT as f64 * scale).round() as u32);
        // Setting the size reset the context: scale it so the figure's layout fills the backing store.
        if let Some(ctx) = el
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
        {
            let _ = ctx.set_transform(scale, 0.0, 0.0, scale, 0.0, 0.0);
        }
        match CanvasBackend::with_canvas_object(el) {
            Some(backend) => {
                let root =
                    DynBackend::new(SvgSizedCanvas(backend, (WIDTH, HEIGHT))).into_drawing_area();
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
    // What the drawn legend lists (series with something to draw), for tests and tools.
    let legend = move || {
        spec.with(|s| {
            s.as_ref()
                .map(|s| legend_names(s).join(", "))
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
            // Provenance: each source's size and a digest of its first MiB, or
            // the URL it was opened from (which a collaborator can open too).
            let mut files = Vec::with_capacity(spec.sources.len());
            for name in &spec.sources {
                let size = state.and_then(|s| {
                    s.workspace.inventory.with_untracked(|inv| {
                        inv.files.iter().find(|f| &f.path == name).map(|f| f.size)
                    })
                });
                let handle = state.and_then(|s| s.handle(name));
                let digest = match &handle {
                    Some(FileHandle::Blob(blob)) => file_digest(blob).await,
                    _ => None,
                };
                files.push(SourceFile {
                    name: name.clone(),
                    size: size.unwrap_or(0),
                    digest,
                    url: handle.as_ref().and_then(|h| h.url().map(String::from)),
                });
            }
            // The token batches and model configs opened from URLs, too: the figure's sources
            // name batches in words, and a collaborator reopening the files needs both to
            // compute the same figure (a config says what a bare checkpoint is).
            let extra: Vec<(String, u64)> = state
                .map(|s| {
                    s.workspace.inventory.with_untracked(|inv| {
                        inv.files
                            .iter()
                            .filter(|f| {
                                matches!(f.kind, FileKind::TokenBatch | FileKind::ModelConfig)
                            })
                            .map(|f| (f.path.clone(), f.size))
                            .collect()
                    })
                })
                .unwrap_or_default();
            for (path, size) in extra {
                let url = state
                    .and_then(|s| s.handle(&path))
                    .and_then(|h| h.url().map(String::from));
                if url.is_some() && !files.iter().any(|f| f.name == path) {
                    files.push(SourceFile {
                        name: path,
                        size,
                        digest: None,
                        url,
                    });
                }
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
    // The canvas is laid out at WIDTH and may be shown smaller: CSS px × this = layout px.
    let layout_scale = move || {
        canvas
            .get_untracked()
            .map(|el| WIDTH as f64 / (el.client_width().max(1) as f64))
            .unwrap_or(1.0)
    };
    // Drag to zoom: where the drag started and where the pointer is, in layout px.
    let drag = RwSignal::new(None::<((f64, f64), (f64, f64))>);
    // Keyboard readout: the index into the figure's distinct x values.
    let cursor = RwSignal::new(None::<usize>);
    let cursor_x = RwSignal::new(None::<f64>);
    let show_readout = move |x: f64| {
        if let Some(f) = readout {
            hover.set(spec.with_untracked(|s| s.as_ref().and_then(|s| f(s, x))));
        }
    };
    let on_down = move |ev: web_sys::MouseEvent| {
        let Some(fr) = frame.get_value() else { return };
        let k = layout_scale();
        let p = (ev.offset_x() as f64 * k, ev.offset_y() as f64 * k);
        if ev.button() == 0 && fr.to_data(p.0, p.1).is_some() {
            ev.prevent_default();
            drag.set(Some((p, p)));
        }
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let k = layout_scale();
        let (px, py) = (ev.offset_x() as f64 * k, ev.offset_y() as f64 * k);
        if let Some((start, _)) = drag.get_untracked() {
            let end = frame.get_value().map_or((px, py), |fr| fr.clamp(px, py));
            drag.set(Some((start, end)));
        }
        cursor_x.set(None);
        let x = frame
            .get_value()
            .and_then(|fr| fr.to_data(px, py))
            .map(|(x, _)| x);
        match x {
            Some(x) => show_readout(x),
            None => hover.set(None),
        }
    };
    let on_up = move |_: web_sys::MouseEvent| {
        let (Some((a, b)), Some(fr)) = (drag.get_untracked(), frame.get_value()) else {
            drag.set(None);
            return;
        };
        drag.set(None);
        // A drag narrower than a few pixels is a click, not a zoom; a flat one zooms x only.
        const MIN_DRAG: f64 = 6.0;
        let (wide, tall) = ((a.0 - b.0).abs() >= MIN_DRAG, (a.1 - b.1).abs() >= MIN_DRAG);
        if !wide && !tall {
            return;
        }
        let (Some(da), Some(db)) = (fr.to_data(a.0, a.1), fr.to_data(b.0, b.1)) else {
            return;
        };
        let order = |u: f64, v: f64| (u.min(v), u.max(v));
        views.update(id, |v| {
            if wide {
                v.x_range = Some(order(da.0, db.0));
            }
            if tall {
                v.y_range = Some(order(da.1, db.1));
            }
        });
    };
    let reset_zoom = move || {
        views.update(id, |v| {
            v.x_range = None;
            v.y_range = None;
        })
    };
    // The distinct x values of the drawn data, in order, within the shown x range.
    let data_xs = move || -> Vec<f64> {
        spec.with_untracked(|s| {
            let Some(s) = s else { return Vec::new() };
            let mut xs: Vec<f64> = s
                .series
                .iter()
                .filter(|se| !se.style.is_span() && !se.faint)
                .flat_map(|se| se.points.iter().map(|p| p[0]))
                .filter(|x| x.is_finite() && s.x.range.is_none_or(|(lo, hi)| *x >= lo && *x <= hi))
                .filter(|x| s.x.scale != Scale::Log || *x > 0.0)
                .collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            xs
        })
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if readout.is_none() {
            return;
        }
        let xs = data_xs();
        if xs.is_empty() {
            return;
        }
        let last = xs.len() - 1;
        let at = cursor.get_untracked().map(|i| i.min(last));
        let big = (xs.len() / 10).max(1);
        let next = match ev.key().as_str() {
            "ArrowRight" | "ArrowUp" => at.map_or(0, |i| (i + 1).min(last)),
            "ArrowLeft" | "ArrowDown" => at.map_or(last, |i| i.saturating_sub(1)),
            "PageUp" => at.map_or(0, |i| (i + big).min(last)),
            "PageDown" => at.map_or(last, |i| i.saturating_sub(big)),
            "Home" => 0,
            "End" => last,
            "Escape" => {
                cursor.set(None);
                cursor_x.set(None);
                hover.set(None);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        cursor.set(Some(next));
        cursor_x.set(Some(xs[next]));
        show_readout(xs[next]);
    };
    // Overlays in CSS px over the canvas: the zoom selection and the keyboard cursor.
    let zoom_box = move || {
        let ((x0, y0), (x1, y1)) = drag.get()?;
        let k = layout_scale();
        Some(format!(
            "left:{:.1}px;top:{:.1}px;width:{:.1}px;height:{:.1}px",
            x0.min(x1) / k,
            y0.min(y1) / k,
            (x0 - x1).abs() / k,
            (y0 - y1).abs() / k
        ))
    };
    let cursor_line = move || {
        let x = cursor_x.get()?;
        spec.track();
        let fr = frame.get_value()?;
        let px = fr.x_to_pixel(x)?;
        let k = layout_scale();
        Some(format!(
            "left:{:.1}px;top:{:.1}px;height:{:.1}px",
            px / k,
            fr.rect.1 as f64 / k,
            (fr.rect.3 - fr.rect.1) as f64 / k
        ))
    };
    let zoomed = move || views.get(id).is_zoomed();
    let hint = if readout.is_some() {
        "; arrow keys step through the points; drag to zoom, double-click to reset"
    } else {
        "; drag to zoom, double-click to reset"
    };
    view! {
        <figure id=id class="figure" data-series=n_series data-series-names=series_names data-legend=legend>
            <Show
                when=move || spec.with(Option::is_some)
                fallback=move || view! { <p class="empty">{empty_text}</p> }
            >
                <ViewControls id=id spec=spec own_log_y=own_log_y zoomed=Signal::derive(zoomed) reset=reset_zoom/>
                <div class="canvas-wrap">
                    <canvas node_ref=canvas width=WIDTH height=HEIGHT role="img" tabindex="0"
                        aria-label=move || spec.with(|s| s.as_ref().map(|s| format!("{}{hint}", s.title)).unwrap_or_default())
                        aria-describedby=format!("{id}-caption")
                        on:mousedown=on_down on:mousemove=on_move on:mouseup=on_up
                        on:mouseleave=move |_| { drag.set(None); hover.set(None) }
                        on:dblclick=move |_| reset_zoom()
                        on:keydown=on_key on:blur=move |_| cursor_x.set(None)></canvas>
                    {move || zoom_box().map(|style| view! { <div class="zoom-box" style=style></div> })}
                    {move || cursor_line().map(|style| view! { <div class="cursor-line" style=style></div> })}
                </div>
                {move || readout.is_some().then(|| view! {
                    <p class="readout" id=format!("{id}-readout") aria-live="polite">{move || hover.get().unwrap_or_else(|| "hover the plot, or focus it and use the arrow keys, for exact values".into())}</p>
                })}
                <figcaption id=format!("{id}-caption")>
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
                <DataTable id=id spec=spec/>
                {move || link_note.get().map(|n| view! { <p class="link-note" role="status">{n}</p> })}
                {move || link.get().map(|l| view! { <input class="share-link" readonly aria-label="link to this figure" value=l/> })}
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </figure>
    }
}

/// Log x / log y toggles (where the figure's kind allows them) and "reset zoom".
#[component]
fn ViewControls(
    id: &'static str,
    spec: Signal<Option<FigureSpec>>,
    own_log_y: bool,
    zoomed: Signal<bool>,
    reset: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let views = ViewState::use_context();
    let allowed =
        move || spec.with(|s| s.as_ref().map_or((false, false), |s| s.kind.log_allowed()));
    let is_log = move |y: bool| {
        spec.with(|s| {
            s.as_ref()
                .is_some_and(|s| if y { s.y.scale } else { s.x.scale } == Scale::Log)
        })
    };
    let toggle = move |y: bool, on: bool| {
        views.update(id, |v: &mut View| {
            if y {
                v.log_y = Some(on);
                v.y_range = None;
            } else {
                v.log_x = Some(on);
                v.x_range = None;
            }
        })
    };
    view! {
        <div class="figure-view">
            {move || allowed().0.then(|| view! {
                <label><input type="checkbox" id=format!("{id}-log-x") prop:checked=move || is_log(false)
                    on:change=move |ev| toggle(false, event_target_checked(&ev))/>" log x"</label>
            })}
            {move || (allowed().1 && !own_log_y).then(|| view! {
                <label><input type="checkbox" id=format!("{id}-log-y") prop:checked=move || is_log(true)
                    on:change=move |ev| toggle(true, event_target_checked(&ev))/>" log y"</label>
            })}
            {move || zoomed.get().then(|| view! {
                <button class="link reset-zoom" id=format!("{id}-reset-zoom") on:click=move |_| reset()>"reset zoom"</button>
            })}
        </div>
    }
}

/// The figure's numbers as a table, built only when the user opens it; sortable by series, x
/// or y (numbers as numbers), and the first [`TABLE_ROWS`] rows of that order are shown.
#[component]
fn DataTable(id: &'static str, spec: Signal<Option<FigureSpec>>) -> impl IntoView {
    let open = RwSignal::new(false);
    let sort = RwSignal::new(None::<SortBy>);
    let n_points = move || {
        spec.with(|s| {
            s.as_ref().map_or(0, |s| {
                s.series.iter().map(|x| x.points.len()).sum::<usize>()
            })
        })
    };
    let rows = move || -> Vec<(String, f64, f64)> {
        let mut rows: Vec<(String, f64, f64)> = spec.with(|s| {
            let Some(s) = s else { return Vec::new() };
            s.series
                .iter()
                .flat_map(|series| {
                    series
                        .points
                        .iter()
                        .map(move |p| (series.name.clone(), p[0], p[1]))
                })
                .collect()
        });
        sort_rows(&mut rows, sort.get(), |r, c| match c {
            0 => SortKey::text(&r.0),
            1 => SortKey::num(Some(r.1)),
            _ => SortKey::num(Some(r.2)),
        });
        rows.truncate(TABLE_ROWS);
        rows
    };
    view! {
        <details class="data-table" id=format!("{id}-data") on:toggle=move |ev| {
            let el: web_sys::HtmlDetailsElement = event_target(&ev);
            open.set(el.open());
        }>
            <summary>{move || format!("Data table ({} points)", n_points())}</summary>
            {move || open.get().then(|| {
                let (x, y) = spec.with(|s| s.as_ref().map(|s| (s.x.label.clone(), s.y.label.clone())).unwrap_or_default());
                let note = move || (n_points() > TABLE_ROWS).then(|| format!("The first {TABLE_ROWS} of {} points in this order; the CSV download has them all.", n_points()));
                view! {
                    {move || note().map(|n| view! { <p class="note">{n}</p> })}
                    <div class="table-scroll" tabindex="0" role="region" aria-label="figure data">
                        <table>
                            <caption>{move || spec.with(|s| s.as_ref().map(|s| s.title.clone()).unwrap_or_default())}</caption>
                            <thead><tr>
                                <SortHeader label="series" column=0 sort=sort/>
                                <SortHeader label=x column=1 sort=sort numeric=true/>
                                <SortHeader label=y column=2 sort=sort numeric=true/>
                            </tr></thead>
                            <tbody>
                                {move || rows().into_iter().map(|(name, x, y)| view! {
                                    <tr><td>{name}</td><td class="num">{format_number(x)}</td><td class="num">{format_number(y)}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
            })}
        </details>
    }
}
