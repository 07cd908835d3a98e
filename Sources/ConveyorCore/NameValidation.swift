/// Checks the names that reach SQL or the wire as identifiers or labels.
///
/// Values are always bound as parameters; these rules exist so that names stay readable in dashboards, metric
/// labels and NOTIFY payloads, and so that a schema name can be quoted safely as an identifier.
public enum NameValidation {
    /// The rule a name broke.
    public enum Violation: Sendable, Hashable {
        case empty
        case tooLong(limit: Int)
        case invalidCharacter(Character)
        case invalidStart

        /// The rule in words, for error messages. Names a refused character by its code points, so a hostile
        /// name never reaches a log or a terminal as it is.
        public var explanation: String {
            switch self {
            case .empty: "must not be empty"
            case .tooLong(let limit): "longer than \(limit) bytes"
            case .invalidCharacter(let character):
                "character "
                    + character.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }
                    .joined(separator: " ") + " is not allowed"
            case .invalidStart: "must start with a lower-case letter or underscore"
            }
        }
    }

    /// Queue names, kinds and namespaces: 1–128 characters from `A-Z a-z 0-9 _ - . :`.
    public static func checkLabel(_ name: String, limit: Int = 128) -> Violation? {
        if name.isEmpty { return .empty }
        if name.utf8.count > limit { return .tooLong(limit: limit) }
        // The common case, checked byte by byte: every byte is an allowed ASCII character.
        if name.utf8.allSatisfy(Self.isLabelByte) { return nil }
        for character in name where !Self.isLabelCharacter(character) {
            return .invalidCharacter(character)
        }
        return nil
    }

    static func isLabelByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: ":"):
            true
        default:
            false
        }
    }

    /// PostgreSQL schema names: a lower-case letter or underscore, then up to 62 lower-case letters, digits or
    /// underscores. Stricter than PostgreSQL on purpose: such a name never needs case folding or escaping.
    public static func checkSchema(_ name: String) -> Violation? {
        if name.isEmpty { return .empty }
        if name.utf8.count > 63 { return .tooLong(limit: 63) }
        guard let first = name.first, first == "_" || ("a"..."z").contains(first) else { return .invalidStart }
        for character in name where !(character == "_" || ("a"..."z").contains(character) || character.isASCIIDigit) {
            return .invalidCharacter(character)
        }
        return nil
    }

    static func isLabelCharacter(_ character: Character) -> Bool {
        guard character.isASCII else { return false }
        if character.isASCIILetter || character.isASCIIDigit { return true }
        return character == "_" || character == "-" || character == "." || character == ":"
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
