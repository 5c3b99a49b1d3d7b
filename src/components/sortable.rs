//! Sortable tables: a header button per column (click, Enter or Space sorts by it; again
//! reverses), `aria-sort` on the header so screen readers say the order, and one comparison
//! for every table: numbers as numbers (2 before 10, 1e-5 before 0.1), text without regard to
//! case, empty cells last in either direction.

use leptos::prelude::*;
use std::cmp::Ordering;

/// What a cell sorts by.
#[derive(Clone, Debug, PartialEq)]
pub enum SortKey {
    Num(f64),
    Text(String),
    /// No value: sorts last, ascending or descending.
    Empty,
}

impl SortKey {
    /// A number, or [`SortKey::Empty`] for `None` (or NaN, which has no place in an order).
    pub fn num(v: Option<f64>) -> SortKey {
        v.filter(|v| !v.is_nan())
            .map_or(SortKey::Empty, SortKey::Num)
    }

    /// Text, or [`SortKey::Empty`] when blank.
    pub fn text(s: &str) -> SortKey {
        if s.trim().is_empty() {
            SortKey::Empty
        } else {
            SortKey::Text(s.to_lowercase())
        }
    }
}

/// The column a table is sorted by, and which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortBy {
    pub column: usize,
    pub descending: bool,
}

/// Sorts `rows` in place by `by` (stable: equal keys keep their order); `None` leaves them.
pub fn sort_rows<T>(rows: &mut [T], by: Option<SortBy>, key: impl Fn(&T, usize) -> SortKey) {
    let Some(by) = by else { return };
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(a, by.column), key(b, by.column));
        match (&ka, &kb) {
            (SortKey::Empty, SortKey::Empty) => Ordering::Equal,
            (SortKey::Empty, _) => Ordering::Greater,
            (_, SortKey::Empty) => Ordering::Less,
            _ => {
                let o = compare(&ka, &kb);
                if by.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    });
}

/// Numbers before text; numbers by value, text by its (lower-cased) characters.
fn compare(a: &SortKey, b: &SortKey) -> Ordering {
    match (a, b) {
        (SortKey::Num(x), SortKey::Num(y)) => x.total_cmp(y),
        (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
        (SortKey::Num(_), _) => Ordering::Less,
        (_, SortKey::Num(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// A column header that sorts its table: the label is a button (keyboard-operable), the
/// `<th>` carries `aria-sort`. `numeric` right-aligns it over a column of numbers.
#[component]
pub fn SortHeader(
    /// The column's name.
    #[prop(into)]
    label: String,
    /// Its index in the row's keys.
    column: usize,
    /// The table's order.
    sort: RwSignal<Option<SortBy>>,
    #[prop(optional)] numeric: bool,
) -> impl IntoView {
    let aria = move || match sort.get() {
        Some(s) if s.column == column && s.descending => "descending",
        Some(s) if s.column == column => "ascending",
        _ => "none",
    };
    let on_click = move |_| {
        sort.update(|s| {
            *s = Some(match *s {
                Some(by) if by.column == column => SortBy {
                    column,
                    descending: !by.descending,
                },
                _ => SortBy {
                    column,
                    descending: false,
                },
            })
        })
    };
    let title = format!("sort by {label}");
    view! {
        <th scope="col" aria-sort=aria class:num=numeric>
            <button type="button" class="sort" title=title on:click=on_click>{label}</button>
        </th>
    }
}
