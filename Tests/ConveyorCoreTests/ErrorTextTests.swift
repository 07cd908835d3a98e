import ConveyorCore
import Testing

@Suite struct ErrorTextTests {
    @Test("a short clean text is stored as it is")
    func cleanTextUnchanged() {
        #expect(ErrorText.sanitized("connection refused: ü") == "connection refused: ü")
    }

    @Test("NUL characters are removed")
    func nulRemoved() {
        #expect(ErrorText.sanitized("bad\u{0}byte\u{0}") == "badbyte")
    }

    @Test("bytes that are not UTF-8 arrive replaced, and stay so")
    func invalidUTF8Replaced() {
        let text = String(decoding: [0x61, 0xFF, 0xFE, 0x62] as [UInt8], as: UTF8.self)
        #expect(ErrorText.sanitized(text) == "a\u{FFFD}\u{FFFD}b")
    }

    @Test("a long text keeps its start within the cap and says how long it was")
    func longTextTruncated() {
        let text = String(repeating: "é", count: 1_048_576)  // 2 MiB of UTF-8
        let stored = ErrorText.sanitized(text)
        #expect(stored.utf8.count <= ErrorText.maximumBytes)
        #expect(stored.hasPrefix("éééé"))
        #expect(stored.hasSuffix("… [truncated, 2097152 bytes in all]"))
    }

    @Test("truncation never splits a character")
    func truncationOnCharacterBoundary() {
        let family = "👨‍👩‍👧"  // one character of 18 bytes
        let stored = ErrorText.sanitized(String(repeating: family, count: 100), maximumBytes: 100)
        let kept = stored.split(separator: "…").first.map(String.init) ?? ""
        #expect(kept.allSatisfy { $0 == Character(family) })
        #expect(stored.utf8.count <= 100)
    }
}
