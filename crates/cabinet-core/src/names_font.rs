//! A font for the config's names on the screen.
//!
//! The page's own font (`ui/fonts/kiosk-sans.otf`) holds exactly the characters of the
//! page's own words. Product, site and place names come from the site config or an
//! operator's, so the page cannot know them: drawn from the system's Noto Sans CJK file,
//! a few Chinese names cost the web process ~2.4 MB of that 19 MB file's pages (its cmap,
//! metrics and shaping tables, and the readahead around each glyph). [`cut`] cuts the same
//! face the page's font comes from (Simplified Chinese) down to the characters asked for,
//! with HarfBuzz's `hb-subset` (Debian's libharfbuzz-bin): a font of a few KB, which the
//! page loads before it draws the names (docs/BENCHMARKS.md, "Window"). Without the tool
//! or the font the page draws the names from the system's fonts, as before.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Noto Sans CJK Regular (fonts-noto-cjk): a collection of five faces.
pub const SOURCE: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";
/// The collection's Simplified Chinese face (JP, KR, SC, TC, HK), the page font's source.
const SC_FACE: u32 = 2;
/// The most characters one font is cut for: far more than the names of a slot map of
/// some 500 products have.
pub const MAX_CHARS: usize = 4096;
/// How long `hb-subset` may take (~15 ms for a few names here): the page waits for the
/// font before it draws the names, so a tool that hangs must not hold the screen.
const DEADLINE: Duration = Duration::from_secs(3);

/// Why no font was cut.
#[derive(Debug, thiserror::Error)]
pub enum NamesFontError {
    /// More characters than [`MAX_CHARS`].
    #[error("{0} characters asked for, at most {MAX_CHARS}")]
    TooMany(usize),
    /// The system's CJK font is not installed.
    #[error("the system's CJK font {0} is missing: install fonts-noto-cjk")]
    NoSource(String),
    /// `hb-subset` could not be started.
    #[error("cannot run hb-subset ({0}): install libharfbuzz-bin")]
    NotRun(std::io::Error),
    /// `hb-subset` did not finish in time (it is stopped).
    #[error("hb-subset took longer than {0:?}")]
    TimedOut(Duration),
    /// `hb-subset` ran and failed.
    #[error("hb-subset failed ({status}): {stderr}")]
    Failed {
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
}

/// The characters of `text` a names font is cut for: everything but ASCII (the page's
/// font has it) and control characters, each once, in code point order.
pub fn chars_of(text: &str) -> Vec<char> {
    let mut chars: Vec<char> = text
        .chars()
        .filter(|c| !c.is_ascii() && !c.is_control())
        .collect();
    chars.sort_unstable();
    chars.dedup();
    chars
}

/// A font (OpenType, CFF) of the system's Noto Sans CJK SC with the glyphs of `text`'s
/// characters ([`chars_of`]); `None` when `text` has none. A character the face lacks is
/// left out (the page's font list falls back for it). Runs `hb-subset` (~15 ms; stopped
/// after 3 s).
pub fn cut(text: &str) -> Result<Option<Vec<u8>>, NamesFontError> {
    cut_from(Path::new(SOURCE), text, DEADLINE)
}

fn cut_from(
    source: &Path,
    text: &str,
    deadline: Duration,
) -> Result<Option<Vec<u8>>, NamesFontError> {
    let chars = chars_of(text);
    if chars.is_empty() {
        return Ok(None);
    }
    if chars.len() > MAX_CHARS {
        return Err(NamesFontError::TooMany(chars.len()));
    }
    if !source.is_file() {
        return Err(NamesFontError::NoSource(source.display().to_string()));
    }
    let unicodes: Vec<String> = chars
        .iter()
        .map(|&c| format!("{:X}", u32::from(c)))
        .collect();
    let mut child = Command::new("hb-subset")
        .arg(format!("--font-file={}", source.display()))
        .arg(format!("--face-index={SC_FACE}"))
        .arg(format!("--unicodes={}", unicodes.join(",")))
        .arg("--output-file=/dev/stdout")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NamesFontError::NotRun)?;
    // Read both pipes beside the wait: a font larger than a pipe's buffer would otherwise
    // block the tool before it exits.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let until = Instant::now() + deadline;
    let status = loop {
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NamesFontError::TimedOut(deadline));
        }
        match child.try_wait().map_err(NamesFontError::NotRun)? {
            Some(status) => break status,
            // Waiting for a child process: std has no wait with a deadline.
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let font = stdout.join().unwrap_or_default();
    let said = stderr.join().unwrap_or_default();
    if !status.success() || font.is_empty() {
        return Err(NamesFontError::Failed {
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&said).trim().to_owned(),
        });
    }
    Ok(Some(font))
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_characters_are_what_the_pages_font_cannot_have_each_once() {
        assert_eq!(
            chars_of("Power bank 充电宝, 充电器\n"),
            ['充', '器', '宝', '电']
        );
        assert_eq!(chars_of("Umbrella 42"), Vec::<char>::new());
        assert_eq!(chars_of("Café\u{85}"), ['é']);
    }

    /// The font has a glyph for each Chinese character asked for and nothing of ASCII,
    /// read from its own cmap; it is a few KB, not the system's 19 MB.
    #[test]
    fn a_names_font_maps_the_names_characters() {
        let font = cut("天河地铁站 B 出口: 雨伞, 充电宝")
            .unwrap()
            .expect("a font");
        assert!(font.len() < 64 * 1024, "{} bytes", font.len());
        let face = ttf_parser::Face::parse(&font, 0).unwrap();
        for c in "天河地铁站出口雨伞充电宝".chars() {
            assert!(face.glyph_index(c).is_some(), "no glyph for {c}");
        }
        assert_eq!(face.glyph_index('B'), None);
        assert_eq!(cut("Umbrella").unwrap(), None);
    }

    /// A tool that does not finish in time is stopped: the page must not wait for ever.
    /// (The deadline is looked at before the tool is, so one of zero is always missed:
    /// the test does not race it.)
    #[test]
    fn a_cut_that_takes_too_long_is_stopped() {
        let late = cut_from(Path::new(SOURCE), "雨伞", Duration::ZERO);
        assert!(matches!(late, Err(NamesFontError::TimedOut(_))), "{late:?}");
    }

    /// A font far larger than a pipe's buffer comes through whole.
    #[test]
    fn a_large_cut_is_read_whole() {
        let many: String = ('\u{4e00}'..='\u{9fff}').take(MAX_CHARS).collect();
        let font = cut(&many).unwrap().expect("a font");
        assert!(font.len() > 256 * 1024, "{} bytes", font.len());
        let face = ttf_parser::Face::parse(&font, 0).unwrap();
        assert!(face.glyph_index('\u{4e00}').is_some());
    }

    #[test]
    fn too_many_characters_or_no_source_is_an_error_not_a_font() {
        let many: String = ('\u{4e00}'..='\u{9fff}').take(MAX_CHARS + 1).collect();
        assert!(matches!(cut(&many), Err(NamesFontError::TooMany(n)) if n == MAX_CHARS + 1));
        let gone = cut_from(Path::new("/nonexistent/font.ttc"), "雨伞", DEADLINE);
        assert!(matches!(gone, Err(NamesFontError::NoSource(_))), "{gone:?}");
    }
}
