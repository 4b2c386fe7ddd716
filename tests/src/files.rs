//! The repository's files as tests read them: paths relative to the root, files by extension,
//! YAML documents as JSON values.

use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::repo_root;

/// `p` relative to the repository root (as messages and tables name files).
pub fn rel(p: &Path) -> String {
    p.strip_prefix(repo_root()).unwrap_or(p).display().to_string()
}

/// The files under `dir` whose extension is one of `exts`, sorted (a missing directory has none).
pub fn files_with_ext(dir: &Path, exts: &[&str], recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if recursive {
                out.extend(files_with_ext(&path, exts, true));
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every document of a YAML text (`---`-separated), as JSON values; empty documents are left out.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// The YAML file at `path` (one document), as a JSON value.
pub fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}
