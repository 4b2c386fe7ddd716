//! Plain-text tables and human-readable durations for tollgatectl's default output.

/// Left-aligned columns separated by two spaces, one header line, no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `250ms`, `45s`, `9m58s`, `2h30m`, `3d4h`: the two largest units.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = s;
    for (size, name) in units {
        if rest >= size || (!parts.is_empty() && parts.len() < 2) {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                parts.push(format!("{n}{name}"));
            } else if !parts.is_empty() {
                parts.push(String::new());
            }
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = render(&["A", "LONG"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]]);
        assert_eq!(t, "A    LONG\nxyz  1\nq");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration_ms(250), "250ms");
        assert_eq!(duration_ms(45_000), "45s");
        assert_eq!(duration_ms(598_000), "9m58s");
        assert_eq!(duration_ms(3_600_000), "1h");
        assert_eq!(duration_ms(9_000_000), "2h30m");
        assert_eq!(duration_ms(86_400_000 + 61_000), "1d");
        assert_eq!(duration_ms(1_500), "2s");
    }
}
