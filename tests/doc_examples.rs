//! The docs' examples, run as a newcomer runs them. README.md and then every docs/*.md, top to bottom in one
//! shell, in a fresh directory, with `jwtd` on PATH and `jwtd serve --dev` running there (the Quickstart's
//! first command):
//! - every ```sh and ```python block runs; each command must exit 0 within its time limit, and a command
//!   followed by a `# → TEXT` comment must print TEXT;
//! - ```sh no-run blocks (cargo commands: builds, benches, fuzzing — what CI runs in its own steps) are not run,
//!   but every bench, example, test, feature, fuzz target and file they name must exist;
//! - the ```toml example of docs/CONFIG.md must load as a configuration file;
//! - the README's ```rust block must be the code of examples/library.rs, which runs on the CLI example's key;
//! - the commands the `serve --dev` banner prints run as printed, without `jwtd` on PATH.
//!
//! The nginx recipe of docs/PROTOCOL.md is run by tests/nginx.rs. An example that breaks, hangs or prints
//! something else fails this test, naming its file and line.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::daemon::{Scratch, wait_for};
use common::docs::{Block, blocks, only_block};
use common::process::Stop;

/// Every Markdown file with examples: the README first (a reader starts there), then docs/ in name order.
fn documents() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    docs.insert(0, "README.md".into());
    docs
}

/// One command of a block (continuation lines joined), where it is, and the output it must show.
struct Step {
    command: String,
    line: usize,
    expect: Option<String>,
}

fn steps(block: &Block) -> Vec<Step> {
    if block.words()[0] == "python" {
        let expect = block
            .text
            .split_once("# → ")
            .map(|(_, e)| e.lines().next().unwrap_or("").trim().to_string());
        return vec![Step {
            command: format!("python3 - <<'PY'\n{}PY", block.text),
            line: block.line,
            expect,
        }];
    }
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, line) in block.text.lines().enumerate() {
        if pending.is_empty() {
            start = block.line + i;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
        }
        if line.ends_with('\\') {
            pending.push_str(line);
            pending.push('\n');
            continue;
        }
        pending.push_str(line);
        let (command, expect) = match pending.split_once("# → ") {
            Some((c, e)) => (c.trim_end().to_string(), Some(e.trim().to_string())),
            None => (pending.clone(), None),
        };
        out.push(Step {
            command,
            line: start,
            expect,
        });
        pending.clear();
    }
    out
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `script` with bash in `dir`, at most `limit`; returns its exit status (None: killed at the limit) and
/// its output. The script runs in its own process group, killed whole at the limit: a hanging `nc` is a
/// grandchild, and would otherwise keep the output open.
fn run(dir: &Path, path: &str, script: &str, limit: Duration) -> (Option<i32>, String) {
    let out_path = dir.join(".example-output");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) with a negative pid signals the process group the child leads (process_group(0)).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status, text)
}

#[test]
fn the_command_examples_run_as_written() {
    let dir = Scratch::new("docs");
    let bin = Path::new(env!("CARGO_BIN_EXE_jwtd")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Stop(
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--dev"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("jwtd.sock"));
    let nc = have("nc");
    assert!(
        nc || std::env::var_os("CI").is_none(),
        "nc (netcat-openbsd) is missing and CI is set: the docs' nc examples must run in CI"
    );
    // Shell state (TOKEN) carries over from block to block and file to file, as for a reader following along:
    // each step runs in a script that replays the assignments before it.
    let mut prelude = String::from("set -euo pipefail\n");
    let mut ran = 0;
    for doc in documents() {
        for block in blocks(&doc) {
            if !matches!(block.words().as_slice(), ["sh"] | ["python"]) {
                continue;
            }
            for step in steps(&block) {
                let at = format!("{doc}:{}", step.line);
                if !nc && step.command.contains("nc ") {
                    eprintln!("{at}: skipped (no nc here): {}", step.command);
                    continue;
                }
                let script = format!("{prelude}{}\n", step.command);
                let (status, out) = run(&dir, &path, &script, Duration::from_secs(20));
                assert_eq!(
                    status,
                    Some(0),
                    "{at}: `{}` failed or hung (status {status:?}; None: killed after 20 s):\n{out}",
                    step.command
                );
                if let Some(expect) = &step.expect {
                    assert!(
                        out.contains(expect.as_str()),
                        "{at}: `{}` printed\n{out}\nwhere the docs show {expect:?}",
                        step.command
                    );
                }
                let first = step.command.trim_start();
                let assignment = first.starts_with("export ")
                    || first.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if assignment {
                    prelude.push_str(&step.command);
                    prelude.push('\n');
                }
                ran += 1;
            }
        }
    }
    assert!(
        ran >= 12,
        "only {ran} commands ran: the blocks were not found"
    );
    drop(daemon);
}

/// What a `sh no-run` command names that must exist, relative to the crate root: `(what, path, needle)` —
/// the file `path` must exist and, when `needle` is given, contain it.
fn references(cwd: &Path, command: &str) -> Vec<(String, PathBuf, Option<String>)> {
    let code = command.split_once(" #").map_or(command, |(c, _)| c);
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        match *w {
            "--bench" => out.push((
                format!("bench {next}"),
                "Cargo.toml".into(),
                Some(format!("name = \"{next}\"")),
            )),
            "--example" => out.push((
                format!("example {next}"),
                format!("examples/{next}.rs").into(),
                None,
            )),
            "--test" => out.push((
                format!("test {next}"),
                format!("tests/{next}.rs").into(),
                None,
            )),
            "--features" => out.push((
                format!("feature {next}"),
                "Cargo.toml".into(),
                Some(format!("\n{next} = ")),
            )),
            "run" if i >= 1 && words[i - 1] == "fuzz" => out.push((
                format!("fuzz target {next}"),
                format!("fuzz/fuzz_targets/{next}.rs").into(),
                None,
            )),
            _ => {
                // A relative path argument (`corpus/line_protocol`, `-dict=dict/protocol.dict`, `./campaign.sh`).
                let arg = w.rsplit_once('=').map_or(*w, |(_, v)| v);
                if arg.contains('/') && !arg.contains("://") && !arg.starts_with('/') {
                    out.push((format!("path {arg}"), cwd.join(arg), None));
                }
            }
        }
    }
    out
}

#[test]
fn the_commands_not_run_name_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for doc in documents() {
        for block in blocks(&doc) {
            if block.words() != ["sh", "no-run"] {
                continue;
            }
            let mut cwd = PathBuf::new();
            for step in steps(&block) {
                if let Some(d) = step.command.trim().strip_prefix("cd ") {
                    cwd = cwd.join(d.trim());
                    assert!(
                        root.join(&cwd).is_dir(),
                        "{doc}:{}: no directory {d}",
                        step.line
                    );
                    continue;
                }
                for (what, path, needle) in references(&cwd, &step.command) {
                    assert!(
                        root.join(&path).exists(),
                        "{doc}:{}: {what}: {} does not exist",
                        step.line,
                        path.display()
                    );
                    if let Some(needle) = needle {
                        let text = std::fs::read_to_string(root.join(&path)).unwrap();
                        assert!(
                            text.contains(&needle),
                            "{doc}:{}: {what} is not in {}",
                            step.line,
                            path.display()
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 8, "only {checked} references were checked");
}

#[test]
fn the_config_example_loads() {
    let block = only_block("docs/CONFIG.md", "toml");
    let dir = Scratch::new("config-example");
    // The key files it names: an IdP's JWKS, a PEM key and an HMAC secret.
    std::fs::copy(
        common::data("keys/RS256.public.jwks"),
        dir.join("idp-jwks.json"),
    )
    .unwrap();
    std::fs::copy(common::data("pem/rsa.pub.pem"), dir.join("extra.pem")).unwrap();
    std::fs::write(dir.join("hs256.secret"), [7u8; 40]).unwrap();
    std::fs::copy(
        common::data("keys/RS256.public.jwks"),
        dir.join("pinned-extra.jwks"),
    )
    .unwrap();
    let loaded = jwtd::config::parse(&block.text, &dir, "docs/CONFIG.md")
        .unwrap_or_else(|e| panic!("docs/CONFIG.md:{}: {e}", block.line));
    assert_eq!(loaded.config.issuers.len(), 4);
    // Two issuers get their keys from identity providers: by discovery, and from a JWKS URL.
    assert_eq!(loaded.sources.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded
        .config
        .http_options("docs/CONFIG.md")
        .unwrap_or_else(|e| panic!("docs/CONFIG.md:{}: {e}", block.line));
}

/// The README's library example is examples/library.rs (its `use` lines and the lines between its markers)
/// and verifies the token of the README's CLI example.
#[test]
fn the_library_example_is_a_program_that_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = std::fs::read_to_string(root.join("examples/library.rs")).unwrap();
    let uses: Vec<&str> = program.lines().filter(|l| l.starts_with("use ")).collect();
    let body = program
        .split_once("    // README begin\n")
        .and_then(|(_, rest)| rest.split_once("    // README end"))
        .expect("examples/library.rs has its README markers")
        .0;
    let body: Vec<&str> = body
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    let shown = format!("{}\n\n{}\n", uses.join("\n"), body.join("\n"));
    let block = only_block("README.md", "rust");
    assert_eq!(
        block.text, shown,
        "README.md:{}: the library example differs from examples/library.rs",
        block.line
    );

    // Run it as the README says, on the CLI example's key and token.
    let bin = Path::new(env!("CARGO_BIN_EXE_jwtd"));
    let example = bin.parent().unwrap().join("examples/library");
    // Built now, in this test's profile: `cargo test --test doc_examples` alone leaves examples as they were.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--example", "library"]);
    if bin.parent().unwrap().ends_with("release") {
        build.arg("--release");
    }
    assert!(build.current_dir(root).status().unwrap().success());
    let dir = Scratch::new("library");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "set -euo pipefail\n\
         jwtd keygen --alg ES256 --kid k1 --private-out k1.jwk --public-out jwks.json\n\
         {} jwks.json \"$(jwtd sign --key k1.jwk --claims '{{\"sub\":\"alice\",\"aud\":\"api\",\"exp\":4102444800}}')\"\n\
         ! {} jwks.json \"$(jwtd sign --key k1.jwk --claims '{{\"sub\":\"alice\",\"aud\":\"other\",\"exp\":4102444800}}')\"\n",
        example.display(),
        example.display()
    );
    let (status, out) = run(&dir, &path, &script, Duration::from_secs(60));
    assert_eq!(status, Some(0), "{out}");
    assert!(
        out.starts_with("alice {\"sub\":\"alice\",\"aud\":\"api\""),
        "{out}"
    );
    assert!(
        out.contains("audience"),
        "the wrong audience must be refused: {out}"
    );
}

/// The commands `jwtd serve --dev` prints (its banner, on stderr) work as printed, pasted into a shell where
/// `jwtd` is not on PATH (as after `cargo run`): every one exits 0 within its limit, the verify commands
/// accept the sample token and the sign command makes a token the daemon accepts.
#[test]
fn the_dev_banner_commands_run_as_printed() {
    let dir = Scratch::new("banner");
    let log = std::fs::File::create(dir.join("stderr.txt")).unwrap();
    let daemon = Stop(
        Command::new(env!("CARGO_BIN_EXE_jwtd"))
            .args(["serve", "--dev"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("jwtd.sock"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let banner = loop {
        let text = std::fs::read_to_string(dir.join("stderr.txt")).unwrap();
        if text.contains("cargo install") {
            break text;
        }
        assert!(Instant::now() < deadline, "no whole banner:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let commands: Vec<&str> = banner
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .collect();
    assert!(
        commands.len() >= 3,
        "the banner should show curl, nc and sign commands:\n{banner}"
    );
    let nc = have("nc");
    let path = std::env::var("PATH").unwrap_or_default();
    let mut signed = 0;
    for command in commands {
        if !nc && command.contains("| nc ") {
            assert!(std::env::var_os("CI").is_none(), "nc is missing under CI");
            continue;
        }
        let (status, out) = run(&dir, &path, command, Duration::from_secs(20));
        assert_eq!(
            status,
            Some(0),
            "banner command `{command}` failed or hung:\n{out}\nbanner:\n{banner}"
        );
        if command.contains(" sign ") {
            let token = out.trim();
            let answer = common::daemon::verify_line(&dir.join("jwtd.sock"), token);
            assert!(answer.starts_with("OK "), "{answer}");
            signed += 1;
        } else {
            assert!(
                out.contains(r#""iss":"https://jwtd.dev""#),
                "`{command}`: {out}"
            );
        }
    }
    assert_eq!(signed, 1, "the banner shows one sign command:\n{banner}");
    drop(daemon);
}
