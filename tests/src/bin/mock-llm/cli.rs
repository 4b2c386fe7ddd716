//! The command line: `mock-llm [--listen ADDR] [--quiet] [--fixtures DIR]`.

use std::path::PathBuf;

pub const USAGE: &str = "usage: mock-llm [--listen ADDR] [--quiet] [--fixtures DIR]\n\
  --listen ADDR   address to bind (default 127.0.0.1:0; port 0 picks a free port)\n\
  --quiet, -q     do not log requests to stderr\n\
  --fixtures DIR  recorded responses served by `x-mock-fixture: NAME` (DIR/NAME.body, DIR/NAME.json);\n\
                  default: the MOCK_LLM_FIXTURES environment variable\n\
prints `listening on IP:PORT` on stdout once bound; runs until killed\n";

pub struct Config {
    pub listen: String,
    pub quiet: bool,
    pub fixtures: Option<PathBuf>,
}

impl Config {
    /// `Ok(None)` means `--help` was asked for.
    pub fn from_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
        let mut cfg = Config { listen: "127.0.0.1:0".to_string(), quiet: false, fixtures: None };
        let mut args = args;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--listen" | "-l" => {
                    cfg.listen = args.next().ok_or("--listen needs an address")?;
                }
                "--quiet" | "-q" => cfg.quiet = true,
                "--fixtures" => {
                    cfg.fixtures = Some(PathBuf::from(args.next().ok_or("--fixtures needs a directory")?));
                }
                "--help" | "-h" => return Ok(None),
                other => {
                    if let Some(addr) = other.strip_prefix("--listen=") {
                        cfg.listen = addr.to_string();
                    } else if let Some(dir) = other.strip_prefix("--fixtures=") {
                        cfg.fixtures = Some(PathBuf::from(dir));
                    } else {
                        return Err(format!("unknown argument {other:?}"));
                    }
                }
            }
        }
        Ok(Some(cfg))
    }
}
