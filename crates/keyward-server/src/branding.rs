//! How the dashboard looks: the product's name, its accent colour and its logo
//! (`[branding]` in the configuration), so that pages shown inside a platform's console look
//! like the platform's own.
//!
//! The colour reaches pages through `/assets/brand.css`, never an inline style, so the
//! dashboard's Content-Security-Policy stays `default-src 'self'`. The logo is read once, at
//! start, checked to be an image by its first bytes, and served from `/assets/logo`.

use std::path::Path;

use axum::body::Bytes;

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;

/// The look every page and email shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branding {
    /// Shown in titles, the page header and texts that name the product.
    pub product_name: String,
    /// The colour of links, buttons and the current navigation entry.
    pub accent: Option<Accent>,
    /// Shown before the product's name in every page's header.
    pub logo: Option<Logo>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product_name: "Keyward".to_owned(),
            accent: None,
            logo: None,
        }
    }
}

/// An accent colour, `#rrggbb`, with the colour of text on it (white or near black, whichever
/// contrasts more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accent {
    pub rgb: [u8; 3],
}

impl Accent {
    pub fn parse(text: &str) -> Result<Self, String> {
        let refused = || format!("`{text}` is not a colour written #rrggbb (such as #0a7d5a)");
        let hex = text.strip_prefix('#').ok_or_else(refused)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refused());
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| refused());
        Ok(Self {
            rgb: [channel(0)?, channel(2)?, channel(4)?],
        })
    }

    pub fn css(self) -> String {
        let [r, g, b] = self.rgb;
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// WCAG 2 relative luminance.
    fn luminance(self) -> f64 {
        let linear = |channel: u8| {
            let c = f64::from(channel) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.rgb;
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    /// White on dark accents, near black on light ones: whichever has the higher contrast
    /// ratio with the accent.
    pub fn ink(self) -> &'static str {
        let l = self.luminance();
        let on_white = 1.05 / (l + 0.05);
        let on_black = (l + 0.05) / 0.05;
        if on_white >= on_black {
            "#ffffff"
        } else {
            "#111111"
        }
    }
}

/// A logo file's bytes and their media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logo {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

impl Logo {
    /// Reads `file`: PNG, JPEG, WebP, GIF or SVG, recognised by its content, at most
    /// [`MAX_LOGO_BYTES`].
    pub fn read(file: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(file)
            .map_err(|e| format!("cannot read the logo {}: {e}", file.display()))?;
        Self::from_bytes(bytes).map_err(|reason| format!("logo {}: {reason}", file.display()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(format!(
                "{} bytes is more than the {MAX_LOGO_BYTES} a logo may have",
                bytes.len()
            ));
        }
        let content_type = media_type(&bytes)
            .ok_or("not a PNG, JPEG, WebP, GIF or SVG image (judged by its first bytes)")?;
        Ok(Self {
            bytes: Bytes::from(bytes),
            content_type,
        })
    }
}

fn media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let svg = text.starts_with("<svg")
        || ((text.starts_with("<?xml") || text.starts_with("<!--")) && text.contains("<svg"));
    svg.then_some("image/svg+xml")
}

impl Branding {
    /// The branding of `[branding]`: each part optional.
    pub fn new(
        product_name: Option<&str>,
        accent_color: Option<&str>,
        logo_file: Option<&Path>,
    ) -> Result<Self, String> {
        let product_name = match product_name.map(str::trim) {
            None => Self::default().product_name,
            Some(name) if name.is_empty() || name.chars().count() > 60 => {
                return Err("the product name must have 1 to 60 characters".into());
            }
            Some(name) if name.chars().any(char::is_control) => {
                return Err("the product name may not contain control characters".into());
            }
            Some(name) => name.to_owned(),
        };
        Ok(Self {
            product_name,
            accent: accent_color.map(Accent::parse).transpose()?,
            logo: logo_file.map(Logo::read).transpose()?,
        })
    }

    /// `/assets/brand.css`: the accent over the stylesheet's own.
    pub fn stylesheet(&self) -> String {
        match self.accent {
            Some(accent) => format!(
                ":root {{ --accent: {}; --accent-ink: {}; }}\n",
                accent.css(),
                accent.ink()
            ),
            None => "/* the default look */\n".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_hex_triplets_with_legible_ink() {
        let dark = Accent::parse("#0A7D5A").unwrap();
        assert_eq!(dark.css(), "#0a7d5a");
        assert_eq!(dark.ink(), "#ffffff");
        assert_eq!(Accent::parse("#ffd60a").unwrap().ink(), "#111111");
        for bad in [
            "0a7d5a",
            "#0a7d5",
            "#0a7d5az",
            "#ggg000",
            "red",
            "#0a7d5a;x",
        ] {
            assert!(Accent::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logos_are_judged_by_content() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        assert_eq!(Logo::from_bytes(png).unwrap().content_type, "image/png");
        let svg = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
        assert_eq!(Logo::from_bytes(svg).unwrap().content_type, "image/svg+xml");
        assert!(Logo::from_bytes(b"<html><script>".to_vec()).is_err());
        assert!(Logo::from_bytes(vec![0x89; MAX_LOGO_BYTES + 1]).is_err());
    }

    #[test]
    fn product_names_are_checked() {
        assert_eq!(
            Branding::new(None, None, None).unwrap(),
            Branding::default()
        );
        let named = Branding::new(Some(" Acme Cloud "), None, None).unwrap();
        assert_eq!(named.product_name, "Acme Cloud");
        assert!(Branding::new(Some(""), None, None).is_err());
        assert!(Branding::new(Some("a\nb"), None, None).is_err());
        assert!(Branding::new(None, Some("blue"), None).is_err());
    }
}
