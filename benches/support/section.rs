//! Rewrites one generated section of BENCHMARKS.md, between its markers
//! `<!-- NAME:begin -->` and `<!-- NAME:end -->`; the rest of the file is
//! left as written.

use std::path::PathBuf;
use std::{fs, io};

pub(crate) fn write_section(name: &str, body: &str) -> io::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = fs::read_to_string(&path)?;
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Err(io::Error::other(format!(
            "{} lacks the markers `{begin}` and `{end}`",
            path.display()
        )));
    };
    if e < b {
        return Err(io::Error::other(format!(
            "{}: `{end}` comes before `{begin}`",
            path.display()
        )));
    }
    let updated = format!("{}{begin}\n{body}{}", &text[..b], &text[e..]);
    fs::write(&path, updated)?;
    Ok(path)
}

/// The flags every generator understands: `--write` (update BENCHMARKS.md,
/// otherwise only print), `--rounds N`, `--filter TEXT`; and `--samples
/// PATH`, which `report` alone uses. cargo adds `--bench`.
pub(crate) struct Args {
    pub(crate) write: bool,
    pub(crate) rounds: Option<usize>,
    pub(crate) filter: Option<String>,
    /// Where `report` writes every sample it timed, as CSV.
    pub(crate) samples: Option<String>,
}

impl Args {
    pub(crate) fn parse() -> Args {
        let mut args = Args {
            write: false,
            rounds: None,
            filter: None,
            samples: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--write" => args.write = true,
                "--rounds" => args.rounds = it.next().and_then(|n| n.parse().ok()),
                "--filter" => args.filter = it.next(),
                "--samples" => args.samples = it.next(),
                "--bench" => {}
                other => {
                    eprintln!(
                        "unknown argument `{other}`; expected --write, --rounds N, --filter TEXT or --samples PATH"
                    );
                    std::process::exit(2);
                }
            }
        }
        args
    }
}
