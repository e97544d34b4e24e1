//! CSV as RFC 4180 writes it: what S3 Inventory files hold and what a backfill's
//! completion report is written in. Keys may hold commas, quotes and line breaks.

/// One field, quoted when it holds a comma, quote or line break (quotes doubled).
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The records of a text, each a list of fields. Line breaks inside quotes belong to
/// the field; CRLF ends a record as LF does; a final line break adds no record.
pub fn records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut fields));
            }
            (_, c) => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push(fields);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_on_commas_and_records_on_line_breaks_outside_quotes() {
        assert_eq!(
            records(r#""b","a%2C+b","12","""x""""#),
            vec![vec!["b", "a%2C+b", "12", "\"x\""]]
        );
        assert_eq!(
            records("b,k,3\r\n\"two\nlines\",,\"a,b\"\n"),
            vec![vec!["b", "k", "3"], vec!["two\nlines", "", "a,b"]]
        );
        assert!(records("").is_empty());
    }

    #[test]
    fn what_is_written_reads_back() {
        for text in ["plain", "a,b", "say \"hi\"", "line\nbreak", "cr\r\nlf", ""] {
            let line = format!("{},{}", field(text), field("next"));
            assert_eq!(records(&line), vec![vec![text.to_string(), "next".into()]]);
        }
    }
}
