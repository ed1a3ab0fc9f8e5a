//! `shared/RULES.md` documents every finding code; this keeps the two in step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use credential_core::rules::codes;

const BEGIN: &str = "<!-- codes:begin (generated from shared/src/rules/codes.rs) -->\n";
const END: &str = "<!-- codes:end -->";

#[test]
fn rules_md_holds_the_code_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("RULES.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{} lacks the {BEGIN:?} ... {END:?} markers", path.display());
    };
    let table = codes::markdown_table();
    let current = &text[b + BEGIN.len()..e];
    if current != table {
        // Regenerate with: RULES_MD_WRITE=1 cargo test -p credential-core --test rules_codes
        if std::env::var_os("RULES_MD_WRITE").is_some() {
            let new = format!("{}{BEGIN}{table}{}", &text[..b], &text[e..]);
            std::fs::write(&path, new).unwrap();
        } else {
            panic!("RULES.md code table is stale; run with RULES_MD_WRITE=1. Expected:\n{table}");
        }
    }
}
