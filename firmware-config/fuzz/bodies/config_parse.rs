//! The body of the `config_parse` fuzz target, shared with the crate's
//! bounded test (`tests/properties.rs`).

use firmware_config::{parse, ConfigError, RENDERED_BYTES_MAX};

/// Parses `data` (invalid UTF-8 replaced) and checks what `parse` promises:
/// it does not panic; an error points inside the input and its message
/// starts with that position; an accepted configuration renders to text
/// that parses back to an equal configuration.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        Ok(config) => {
            let rendered = config.to_string();
            assert!(rendered.len() <= RENDERED_BYTES_MAX, "{rendered}");
            assert_eq!(parse(&rendered).as_ref(), Ok(&config), "{rendered}");
        }
        Err(error) => {
            check_position(&text, &error);
            let message = error.to_string();
            let position = format!("line {}, column {}: ", error.line, error.column);
            assert!(message.starts_with(&position), "{message}");
        }
    }
}

/// Asserts that `error` names a line of `text`, and a column on it no
/// further than one past its last character.
pub fn check_position(text: &str, error: &ConfigError) {
    // `str::lines` would also drop a lone trailing `\r`, which is part of
    // the last line to the parser.
    let lines: Vec<&str> = text.split('\n').collect();
    let line = usize::try_from(error.line).unwrap_or(usize::MAX);
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} outside 1..={}: {error}",
        lines.len()
    );
    let mut content = lines[line - 1];
    if line < lines.len() {
        content = content.strip_suffix('\r').unwrap_or(content);
    }
    let columns = content.chars().count() + 1;
    let column = usize::try_from(error.column).unwrap_or(usize::MAX);
    assert!(
        (1..=columns).contains(&column),
        "column {column} outside 1..={columns}: {error}"
    );
}
