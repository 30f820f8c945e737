//! `report.html` in a real headless browser (Chromium): the page renders,
//! its charts are drawn in both targets' colours, and the browser logs no
//! console message (the page has no scripts: any message is an error).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Window of the screenshot.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2600;

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("no Chromium found: ci/install-deps.sh installs Debian's `chromium` package");
}

/// What the browser made of a page.
pub struct Rendered {
    /// RGBA pixels of the screenshot.
    pub pixels: Vec<u8>,
    /// Width and height of the screenshot.
    pub size: (u32, u32),
    /// Console messages the page caused.
    pub console: Vec<String>,
}

/// Opens `page` in headless Chromium and takes a screenshot next to it.
pub fn render(page: &Path) -> Rendered {
    let shot = page.with_file_name("screenshot.png");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && shot.is_file(),
        "chromium failed ({:?}):\n{stderr}",
        out.status
    );
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Failed to load resource"))
        .map(str::to_string)
        .collect();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf[..info.buffer_size()].to_vec(),
        png::ColorType::Rgb => buf[..info.buffer_size()]
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    Rendered {
        pixels: rgba,
        size: (info.width, info.height),
        console,
    }
}

impl Rendered {
    /// Pixels within `tolerance` of `rgb` in every channel.
    pub fn count_near(&self, rgb: (u8, u8, u8), tolerance: u8) -> usize {
        let near = |a: u8, b: u8| a.abs_diff(b) <= tolerance;
        self.pixels
            .chunks(4)
            .filter(|p| near(p[0], rgb.0) && near(p[1], rgb.1) && near(p[2], rgb.2))
            .count()
    }

    /// Pixels that are not (nearly) the page or card background.
    pub fn inked(&self) -> usize {
        self.pixels
            .chunks(4)
            .filter(|p| p[0] < 235 || p[1] < 235 || p[2] < 235)
            .count()
    }
}

/// Checks a report page as a person would see it.
pub fn check_report(dir: &Path) {
    let page = dir.join("report.html");
    let r = render(&page);
    assert_eq!(r.size, (WIDTH, HEIGHT), "screenshot size");
    assert!(r.console.is_empty(), "console messages: {:#?}", r.console);
    let total = (WIDTH * HEIGHT) as usize;
    assert!(
        r.inked() > total / 20,
        "the page looks empty: {} of {total} pixels drawn",
        r.inked()
    );
    // Chart lines in our colour and the baseline's (charts::OURS,
    // charts::BASELINE), and the green of passed gates.
    for (what, rgb) in [
        ("HoloFusion lines", (0x1f, 0x5f, 0xbf)),
        ("PostgreSQL lines", (0xe0, 0x6c, 0x00)),
        ("passed gate rows", (0xe8, 0xf6, 0xec)),
    ] {
        let n = r.count_near(rgb, 12);
        assert!(n > 200, "{what}: only {n} pixels in the screenshot");
    }
}

#[test]
fn console_errors_and_blank_pages_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>missing_function();</script></body></html>",
    )
    .unwrap();
    let r = render(&page);
    assert_eq!(r.console.len(), 1, "{:#?}", r.console);
    assert!(
        r.console[0].contains("missing_function"),
        "{:#?}",
        r.console
    );
    assert!(r.inked() < 100, "a blank page has no ink");
}
