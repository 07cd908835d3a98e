/// Error texts as they are stored in attempt records and `last_error`: handler errors, cancel and discard reasons.
///
/// A stored text never holds NUL (PostgreSQL's `text` and `jsonb` refuse it, which once made a whole batch of
/// results unwritable), is valid UTF-8 (bytes that are not were replaced with U+FFFD when the `String` was made),
/// and is at most ``maximumBytes`` long: a longer text keeps its beginning, cut at a character boundary, and ends
/// with a mark that says how long it was.
public enum ErrorText {
    /// The most UTF-8 bytes of an error text that are stored, the truncation mark included: 4,096.
    public static let maximumBytes = 4096

    /// `text` cleaned for storage: NUL removed, and truncated to `maximumBytes` with a mark such as
    /// `… [truncated, 2097152 bytes in all]`.
    public static func sanitized(_ text: String, maximumBytes: Int = Self.maximumBytes) -> String {
        let utf8 = text.utf8
        let hasNUL = utf8.contains(0)
        if !hasNUL, utf8.count <= maximumBytes { return text }
        let cleaned = hasNUL ? String(String.UnicodeScalarView(text.unicodeScalars.filter { $0 != "\u{0}" })) : text
        let total = cleaned.utf8.count
        if total <= maximumBytes { return cleaned }
        let mark = "… [truncated, \(total) bytes in all]"
        let budget = max(0, maximumBytes - mark.utf8.count)
        var kept = 0
        var end = cleaned.startIndex
        for index in cleaned.indices {
            let size = cleaned[index].utf8.count
            if kept + size > budget { break }
            kept += size
            end = cleaned.index(after: index)
        }
        return String(cleaned[..<end]) + mark
    }
}
