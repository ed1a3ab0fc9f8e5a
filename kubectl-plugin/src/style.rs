//! Terminal styling: tree glyphs and colour on a terminal, plain ASCII everywhere else (pipes,
//! files, CI logs, snapshot tests), so the output greps and diffs cleanly.

use credential_core::readiness::Status;

use crate::cli::ColorMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Unicode tree lines and check marks (`├──`, `✓`) instead of ASCII (`|--`, `[ok]`).
    pub glyphs: bool,
    /// ANSI colour.
    pub color: bool,
}

impl Style {
    /// `auto`: glyphs on a terminal, colour on a terminal unless NO_COLOR is set (no-color.org).
    pub fn detect(mode: ColorMode, stdout_is_tty: bool, no_color_env: bool) -> Self {
        match mode {
            ColorMode::Auto => Style { glyphs: stdout_is_tty, color: stdout_is_tty && !no_color_env },
            ColorMode::Always => Style { glyphs: true, color: true },
            ColorMode::Never => Style { glyphs: stdout_is_tty, color: false },
        }
    }

    #[cfg(test)]
    pub fn plain() -> Self {
        Style { glyphs: false, color: false }
    }

    /// The marker for a check status, padded so names line up.
    pub fn mark(&self, status: Status) -> String {
        let (glyph, ascii, color) = match status {
            Status::Pass => ("✓", "[ok]  ", GREEN),
            Status::Fail => ("✗", "[FAIL]", RED),
            Status::Warn => ("!", "[warn]", YELLOW),
            Status::Skip => ("-", "[skip]", DIM),
            Status::Unknown => ("?", "[??]  ", YELLOW),
        };
        let text = if self.glyphs { glyph } else { ascii };
        self.paint(text, color)
    }

    /// Width of [`Style::mark`] without escape codes.
    pub fn mark_width(&self) -> usize {
        if self.glyphs { 1 } else { 6 }
    }

    /// (branch, last branch, continuation, last continuation).
    pub fn tree(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        if self.glyphs { ("├── ", "└── ", "│   ", "    ") } else { ("|-- ", "`-- ", "|   ", "    ") }
    }

    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(text, BOLD)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint(text, RED)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint(text, GREEN)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint(text, YELLOW)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint(text, DIM)
    }
}

/// Text from cluster objects with control characters replaced: a condition message or a name
/// read from a file must not be able to move the cursor or change colours on the terminal.
pub fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

const BOLD: &str = "1";
const RED: &str = "1;31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const DIM: &str = "2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_plain_off_a_terminal_and_respects_no_color() {
        assert_eq!(Style::detect(ColorMode::Auto, false, false), Style::plain());
        assert_eq!(Style::detect(ColorMode::Auto, true, true), Style { glyphs: true, color: false });
        assert_eq!(Style::detect(ColorMode::Auto, true, false), Style { glyphs: true, color: true });
        assert_eq!(Style::detect(ColorMode::Never, false, false), Style::plain());
    }

    #[test]
    fn clean_removes_escape_sequences_and_newlines() {
        assert_eq!(clean("a\x1b[31mb\nc"), "a [31mb c");
    }

    #[test]
    fn marks_have_the_declared_width() {
        for style in [Style::plain(), Style { glyphs: true, color: false }] {
            for s in [Status::Pass, Status::Fail, Status::Warn, Status::Skip, Status::Unknown] {
                assert_eq!(style.mark(s).chars().count(), style.mark_width());
            }
        }
    }
}
