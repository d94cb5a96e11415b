//! CSV: one sample per line, an optional header, an optional `label`/`class` column. The rules
//! are on [`super::load`].

use std::path::Path;

use super::{DataError, Dataset, file_name, io_err};

/// Reads and parses `path`.
pub(super) fn load(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })?;
    parse(path, &file_name(path), &text)
}

/// How the fields of a line are separated.
#[derive(Clone, Copy)]
enum Sep {
    Char(char),
    Whitespace,
}

impl Sep {
    /// `,`, else `;`, else tab, else runs of spaces — whichever the first row contains.
    fn detect(line: &str) -> Self {
        [',', ';', '\t']
            .into_iter()
            .find(|&c| line.contains(c))
            .map_or(Sep::Whitespace, Sep::Char)
    }

    fn fields(self, line: &str) -> Vec<&str> {
        fn clean(f: &str) -> &str {
            f.trim().trim_matches('"').trim()
        }
        match self {
            Sep::Char(c) => line.split(c).map(clean).collect(),
            Sep::Whitespace => line.split_whitespace().map(clean).collect(),
        }
    }
}

/// Parses CSV text; `path` names the source in errors, `name` becomes the dataset's name.
pub(super) fn parse(path: &Path, name: &str, text: &str) -> Result<Dataset, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((first_no, first)) = lines.next() else {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    };
    let sep = Sep::detect(first);
    let first_fields = sep.fields(first);
    let width = first_fields.len();
    let is_header = first_fields.iter().any(|f| f.parse::<f64>().is_err());
    let label_col = if is_header {
        first_fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case("label") || f.eq_ignore_ascii_case("class"))
    } else {
        None
    };
    let dim = width - usize::from(label_col.is_some());
    if dim == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }

    let mut x = Vec::new();
    let mut labels = Vec::new();
    let data_lines = (!is_header)
        .then_some((first_no, first))
        .into_iter()
        .chain(lines);
    for (sample, (line_no, line)) in data_lines.enumerate() {
        let fields = sep.fields(line);
        if fields.len() != width {
            return Err(DataError::Ragged {
                path: path.to_path_buf(),
                line: line_no,
                expected: width,
                found: fields.len(),
            });
        }
        let mut col = 0;
        for (c, f) in fields.iter().enumerate() {
            if Some(c) == label_col {
                let label = f.parse::<u16>().ok().filter(|&l| l != u16::MAX);
                let label = label.ok_or_else(|| DataError::BadLabel {
                    path: path.to_path_buf(),
                    line: line_no,
                    text: (*f).to_string(),
                })?;
                labels.push(label);
                continue;
            }
            let v = f.parse::<f64>().map_err(|_| DataError::Parse {
                path: path.to_path_buf(),
                line: line_no,
                col: c + 1,
                text: (*f).to_string(),
            })?;
            // Overflowing f32 is as bad as infinite: report it the same way.
            let v32 = v as f32;
            if !v32.is_finite() {
                return Err(DataError::NonFinite {
                    path: path.to_path_buf(),
                    sample,
                    line: Some(line_no),
                    col,
                    value: v,
                });
            }
            x.push(v32);
            col += 1;
        }
    }
    if x.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let (labels, classes) = match label_col {
        Some(_) => {
            let classes = labels
                .iter()
                .map(|&l| usize::from(l) + 1)
                .max()
                .unwrap_or(0);
            (Some(labels), classes)
        }
        None => (None, 0),
    };
    Ok(Dataset {
        name: name.to_string(),
        x,
        dim,
        shape: vec![dim],
        labels,
        classes,
    })
}
