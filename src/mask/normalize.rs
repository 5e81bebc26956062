//! Disguises undone for detection: a copy of the text with escapes decoded (`\n`, `\u0067`, as
//! left in JSON or code that was not parsed), percent-encoding undone, invisible characters
//! (zero-width spaces and joiners, soft hyphens, BOMs) dropped and full-width look-alikes mapped
//! to ASCII. Detectors run on the copy; what they find is mapped back to the span of the original
//! text, and that span is what gets masked.

/// A normalized copy of a text and the way back to the original's offsets.
pub struct Normalized {
    pub text: String,
    /// (offset in `text`, offset in the original) at each start and end of a changed unit;
    /// between marks the two advance together.
    marks: Vec<(u32, u32)>,
}

impl Normalized {
    fn map(&self, p: usize) -> usize {
        match self.marks.partition_point(|&(n, _)| n as usize <= p) {
            0 => p,
            i => {
                let (n, o) = self.marks[i - 1];
                o as usize + (p - n as usize)
            }
        }
    }

    /// The original span that produced `start..end` of the copy.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.map(start);
        (s, self.map(end).max(s))
    }
}

/// Whether `text` holds anything normalizing would change; cheap, checked before copying.
fn needs(text: &str) -> bool {
    let b = text.as_bytes();
    // One pass for the ASCII starts; `&` counts only where a character reference begins.
    // Terminal colours (`grep --color`, `rg`, test runners) split what they highlight.
    if memchr::memchr(ESC, b).is_some() {
        return true;
    }
    let mut i = 0;
    while let Some(n) = memchr::memchr3(b'\\', b'%', b'&', &b[i..]) {
        let at = i + n;
        if b[at] != b'&' || html_entity(&text[at..]).is_some() {
            return true;
        }
        i = at + 1;
    }
    // Invisible and full-width characters all begin with one of these lead bytes, and most
    // text has no byte above ASCII at all.
    !b.is_ascii()
        && (memchr::memchr3(0xE2, 0xEF, 0xC2, b).is_some()
            || memchr::memchr2(0xE1, 0xCD, b).is_some())
}

/// The normalized copy of `text`, or `None` when it would be the same.
pub fn normalize(text: &str) -> Option<Normalized> {
    if !needs(text) || text.len() > (u32::MAX / 2) as usize {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut marks: Vec<(u32, u32)> = Vec::new();
    let mut changed = false;
    let b = text.as_bytes();
    let has_escape = memchr::memchr(ESC, b).is_some();
    let mut i = 0;
    // A changed unit: `c` (or nothing) in place of the original's `at..at + len`.
    let unit =
        |out: &mut String, marks: &mut Vec<(u32, u32)>, c: Option<char>, at: usize, len: usize| {
            marks.push((out.len() as u32, at as u32));
            if let Some(c) = c {
                out.push(c);
            }
            marks.push((out.len() as u32, (at + len) as u32));
        };
    while i < b.len() {
        // Copy the plain run up to the next byte that could start a disguise, in one go.
        let special = memchr::memchr3(b'\\', b'%', b'&', &b[i..]).map_or(b.len(), |n| i + n);
        let special = if has_escape {
            memchr::memchr(ESC, &b[i..special]).map_or(special, |n| i + n)
        } else {
            special
        };
        let run = if b[i..special].is_ascii() {
            special
        } else {
            b[i..special]
                .iter()
                .position(|&c| c >= 0x80)
                .map_or(special, |n| i + n)
        };
        if run > i {
            out.push_str(&text[i..run]);
            i = run;
            continue;
        }
        let c = b[i];
        if c == ESC {
            // An ANSI escape sequence (CSI `ESC [ … final`, or a two-byte `ESC x`) reads as
            // nothing: `ghp_` highlighted by grep and the rest of the token join again.
            let len = ansi_sequence(&b[i..]);
            unit(&mut out, &mut marks, None, i, len);
            i += len;
            changed = true;
            continue;
        }
        if c == b'\\' {
            let (decoded, len) = match b.get(i + 1) {
                // An escaped escape before a line break (`\\n`): text escaped twice, as in a
                // JSON log line quoted in JSON.
                // A shell line continued (`\` at the end of a line, the next one indented):
                // one line, as the shell reads it, so that a command's flags stay together.
                Some(b'\n' | b'\r') => {
                    let mut len = 1;
                    if b.get(i + len) == Some(&b'\r') {
                        len += 1;
                    }
                    if b.get(i + len) == Some(&b'\n') {
                        len += 1;
                        while matches!(b.get(i + len), Some(b' ' | b'\t')) {
                            len += 1;
                        }
                        (Some(' '), len)
                    } else {
                        (None, 1)
                    }
                }
                Some(b'\\') if matches!(b.get(i + 2), Some(b'n' | b'r' | b't')) => (
                    Some(match b[i + 2] {
                        b'n' => '\n',
                        b'r' => '\r',
                        _ => '\t',
                    }),
                    3,
                ),
                Some(b'n') => (Some('\n'), 2),
                Some(b'r') => (Some('\r'), 2),
                Some(b't') => (Some('\t'), 2),
                Some(b'"') => (Some('"'), 2),
                Some(b'\'') => (Some('\''), 2),
                Some(b'\\') => (Some('\\'), 2),
                Some(b'/') => (Some('/'), 2),
                Some(b'u') => match text
                    .get(i + 2..i + 6)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                {
                    Some(code) if !(0xD800..0xE000).contains(&code) => (char::from_u32(code), 6),
                    _ => (None, 1),
                },
                Some(b'x') => match text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(code) if code.is_ascii() => (Some(code as char), 4),
                    _ => (None, 1),
                },
                _ => (None, 1),
            };
            if let Some(d) = decoded {
                unit(&mut out, &mut marks, Some(d), i, len);
                i += len;
                changed = true;
                continue;
            }
        } else if c == b'&'
            && let Some((decoded, len)) = html_entity(&text[i..])
        {
            unit(&mut out, &mut marks, Some(decoded), i, len);
            i += len;
            changed = true;
            continue;
        } else if c == b'%'
            && let Some(code) = percent(text, i + 1)
            && ((0x20..0x7F).contains(&code) || matches!(code, b'\n' | b'\r' | b'\t'))
        {
            // `%25` before two more hex digits: encoded twice (`%253D` is `=`).
            let (code, len) = match percent(text, i + 3) {
                Some(inner) if code == b'%' && (0x20..0x7F).contains(&inner) => (inner, 5),
                _ => (code, 3),
            };
            unit(&mut out, &mut marks, Some(code as char), i, len);
            i += len;
            changed = true;
            continue;
        } else if c >= 0x80 {
            let ch = text[i..].chars().next().unwrap_or('\u{FFFD}');
            let len = ch.len_utf8();
            if is_invisible(ch) {
                unit(&mut out, &mut marks, None, i, len);
                i += len;
                changed = true;
                continue;
            }
            if ('\u{FF01}'..='\u{FF5E}').contains(&ch) {
                let ascii = char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch);
                unit(&mut out, &mut marks, Some(ascii), i, len);
                i += len;
                changed = true;
                continue;
            }
            out.push(ch);
            i += len;
            continue;
        }
        out.push(c as char);
        i += 1;
    }
    changed.then_some(Normalized { text: out, marks })
}

const ESC: u8 = 0x1B;

/// The byte of the two hex digits at `at` of `text`, if there are two.
fn percent(text: &str, at: usize) -> Option<u8> {
    text.get(at..at + 2)
        .filter(|h| h.bytes().all(|x| x.is_ascii_hexdigit()))
        .and_then(|h| u8::from_str_radix(h, 16).ok())
}

/// The length of the ANSI escape sequence at the start of `b` (which begins with ESC): a CSI
/// (`ESC [`, parameters, intermediates, a final byte), or ESC and the byte after it.
fn ansi_sequence(b: &[u8]) -> usize {
    if b.get(1) != Some(&b'[') {
        return if b.get(1).is_some_and(|c| (0x40..0x7F).contains(c)) {
            2
        } else {
            1
        };
    }
    let mut j = 2;
    while j < b.len() && j < 64 && (0x20..0x40).contains(&b[j]) {
        j += 1;
    }
    if j < b.len() && (0x40..0x7F).contains(&b[j]) {
        j + 1
    } else {
        1
    }
}

/// An HTML character reference at the start of `s` (`&#95;`, `&#x5f;`, `&amp;`): the character
/// and the reference's length.
fn html_entity(s: &str) -> Option<(char, usize)> {
    let end = s.as_bytes().iter().take(12).position(|&b| b == b';')?;
    let body = &s[1..end];
    let c = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code)?
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "sol" => '/',
            "lowbar" => '_',
            "equals" => '=',
            "colon" => ':',
            "commat" => '@',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// Characters that render as nothing: a secret with one inside still works when pasted.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{034F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str, needle: &str) -> String {
        let n = normalize(text).expect("changed");
        let at = n.text.find(needle).expect("needle in normalized text");
        let (s, e) = n.original_span(at, at + needle.len());
        text[s..e].to_owned()
    }

    #[test]
    fn maps_every_disguise_back_to_the_original_span() {
        assert_eq!(round("a\\nghp_x1 b", "ghp_x1"), "ghp_x1");
        assert_eq!(round("x=\\u0067hp_abc;", "ghp_abc"), "\\u0067hp_abc");
        assert_eq!(round("u=p%40ss%21w@h", "p@ss!w"), "p%40ss%21w");
        assert_eq!(
            round("tok gh\u{200B}p_ab\u{200D}cd end", "ghp_abcd"),
            "gh\u{200B}p_ab\u{200D}cd"
        );
        assert_eq!(round("ｇｈｐ＿ａｂ", "ghp_ab"), "ｇｈｐ＿ａｂ");
        assert_eq!(round("x ghp&#95;ab&#x43; y", "ghp_abC"), "ghp&#95;ab&#x43;");
        assert!(normalize("plain ascii, nothing to do").is_none());
        assert!(normalize("100% sure, é ü").is_none());
    }
}
