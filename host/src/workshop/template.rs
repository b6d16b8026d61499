//! The workshop template, compiled into the binary from `templates/workshop`.

use include_dir::{include_dir, Dir, DirEntry};

static WORKSHOP: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates/workshop");

pub struct TemplateFile {
    pub path: &'static str,
    pub contents: &'static str,
}

/// Every template file, with workshop-relative paths.
pub fn files() -> impl Iterator<Item = TemplateFile> {
    let mut out = Vec::new();
    collect(&WORKSHOP, &mut out);
    out.into_iter()
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<TemplateFile>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => collect(d, out),
            DirEntry::File(f) => {
                if let (Some(path), Some(contents)) = (f.path().to_str(), f.contents_utf8()) {
                    out.push(TemplateFile { path, contents });
                }
            }
        }
    }
}
