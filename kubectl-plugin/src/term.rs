//! What the output is written for: the terminal's width and the current time.
//!
//! Prose wraps at the width of the terminal (`COLUMNS` first, as shells and kubectl's own help do,
//! then the size of the terminal stdout is on); off a terminal it wraps at [`PIPE_WIDTH`] columns.
//! Commands are never wrapped, whatever the width.

use std::io::IsTerminal;

/// Width used when stdout is not a terminal and `COLUMNS` is not set.
pub const PIPE_WIDTH: usize = 120;
/// Narrowest width honoured: below it, text columns would be a word or two wide.
pub const MIN_WIDTH: usize = 40;

/// The width to wrap prose at.
pub fn width() -> usize {
    let from_env = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|c| *c > 0);
    let columns = from_env.or_else(|| {
        let stdout = std::io::stdout();
        if !stdout.is_terminal() {
            return None;
        }
        terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0)).filter(|w| *w > 0)
    });
    columns.unwrap_or(PIPE_WIDTH).max(MIN_WIDTH)
}

/// Now, for ages ("5m ago"). `KUBECTL_CREDENTIAL_NOW` (RFC 3339) pins it, so that output with
/// ages can be reproduced (golden tests, bug reports).
pub fn now() -> jiff::Timestamp {
    std::env::var("KUBECTL_CREDENTIAL_NOW")
        .ok()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

/// kubectl's age of a timestamp as written in an object (`5d3h`), or `None` when unreadable.
pub fn age(since: &str, now: jiff::Timestamp) -> Option<String> {
    let t = since.parse::<jiff::Timestamp>().ok()?;
    Some(crate::cmd::list::human_duration(now.as_second() - t.as_second()))
}

/// Greedy word wrap; a word longer than `width` gets a line of its own. Runs of spaces inside a
/// line are kept (they separate fields); at a break they are dropped.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut gap = 0usize;
    for word in text.split(' ') {
        if word.is_empty() {
            gap += 1;
            continue;
        }
        let spaces = if line.is_empty() { 0 } else { gap + 1 };
        if !line.is_empty() && line.chars().count() + spaces + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        } else {
            line.push_str(&" ".repeat(spaces));
        }
        line.push_str(word);
        gap = 0;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_on_spaces_and_keeps_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("averyveryverylongword x", 5), vec!["averyveryverylongword", "x"]);
        assert_eq!(wrap("", 5), vec![""]);
        assert_eq!(wrap("a  b  cccc", 6), vec!["a  b", "cccc"]);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now: jiff::Timestamp = "2025-01-06T03:00:00Z".parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(age("2025-01-01T00:00:00Z", now).as_deref(), Some("5d3h"));
        assert_eq!(age("yesterday", now), None);
    }
}
