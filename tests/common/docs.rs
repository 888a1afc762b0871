//! The fenced code blocks of the project's Markdown files, for the tests that run or load them (the docs'
//! examples are tests: an example that breaks fails `cargo test`).

use std::path::Path;

/// A fenced block: the file it is in, its info string (`sh`, `sh no-run`, `nginx`, …), the line number of its
/// first line of code, its text.
pub struct Block {
    pub file: String,
    pub info: String,
    pub line: usize,
    pub text: String,
}

impl Block {
    /// The info string's words: `["sh", "no-run"]`.
    pub fn words(&self) -> Vec<&str> {
        self.info.split_whitespace().collect()
    }
}

/// Reads `rel` (relative to the crate root) and returns its fenced blocks in order.
pub fn blocks(rel: &str) -> Vec<Block> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let markdown = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    file: rel.to_string(),
                    info: info.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{rel}: a code block is not closed");
    out
}

/// The one block of `rel` whose info string is `info`.
pub fn only_block(rel: &str, info: &str) -> Block {
    let mut found: Vec<Block> = blocks(rel).into_iter().filter(|b| b.info == info).collect();
    assert_eq!(
        found.len(),
        1,
        "{rel}: expected exactly one ```{info} block"
    );
    found.remove(0)
}
