//! Images shown to the model: always as `data:` URLs of their bytes, never as a link (a
//! Telegram file link carries the bot's token, and the provider would fetch it with that
//! token in its logs).

use base64::Engine;

/// One image of a request, and the turn it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptImage {
    pub turn: ImageTurn,
    /// `data:<type>;base64,<bytes>`.
    pub data_url: String,
}

/// Which message an image goes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageTurn {
    /// The turn being answered.
    Current,
    /// The user message of this earlier exchange (an index into the request's `history`).
    History(usize),
}

impl PromptImage {
    pub fn new(turn: ImageTurn, mime_type: &str, bytes: &[u8]) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        Self {
            turn,
            data_url: format!("data:{mime_type};base64,{encoded}"),
        }
    }
}

/// The image type of `bytes`, by their magic numbers (a photo Telegram recompressed is a
/// JPEG; a document says what it likes, so the bytes decide).
pub fn sniff_image_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_travel_as_data_urls_of_their_bytes() {
        let image = PromptImage::new(ImageTurn::Current, "image/png", b"\x89PNG");
        assert_eq!(image.data_url, "data:image/png;base64,iVBORw==");
    }

    #[test]
    fn the_type_is_read_from_the_bytes() {
        assert_eq!(
            sniff_image_type(b"\xFF\xD8\xFF\xE0rest"),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(sniff_image_type(b"%PDF-1.7"), None);
    }
}
