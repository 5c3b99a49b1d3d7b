//! A panic must not leave a dead page: log it to the console (with the Rust
//! message) and show a visible banner that says what happened.

pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show_fatal(&info.to_string());
    }));
}

/// Writes the message into the `#fatal` banner of `index.html`.
fn show_fatal(message: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(el) = doc.get_element_by_id("fatal") {
        el.set_text_content(Some(&format!(
            "rankscope hit an internal error and stopped: {message}. Your files were not sent \
             anywhere. Reload the page to start again, and please report this message."
        )));
        let _ = el.set_attribute("class", "fatal shown");
    }
}
