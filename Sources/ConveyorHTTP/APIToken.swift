import Conveyor
import Foundation

/// A bearer token of the admin API, with the name that operator actions record (`token:<name>` in timelines).
public struct APIToken: Sendable, Hashable {
    public var name: String
    public var secret: String

    public init(name: String, secret: String) {
        self.name = name
        self.secret = secret
    }

    /// Reads `CONVEYOR_API_TOKEN`: one secret (named `default`), or comma-separated `name:secret` pairs so that
    /// each team's actions are told apart, e.g. `ops:6f1c…,deploy:9a2e…`. Empty or missing gives no token.
    ///
    /// - Throws: `INVALID_CONFIGURATION` for an empty name or a secret shorter than 16 characters.
    public static func parse(_ text: String?) throws -> [APIToken] {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else { return [] }
        return try text.split(separator: ",").map { part in
            let part = part.trimmingCharacters(in: .whitespaces)
            let token: APIToken
            if let colon = part.firstIndex(of: ":") {
                token = APIToken(name: String(part[..<colon]), secret: String(part[part.index(after: colon)...]))
            } else {
                token = APIToken(name: "default", secret: part)
            }
            guard !token.name.isEmpty, token.name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
            else {
                throw ConveyorError(
                    .invalidConfiguration,
                    "an API token's name must be letters, digits, '-', '_' or '.'"
                )
            }
            guard token.secret.utf8.count >= 16 else {
                throw ConveyorError(
                    .invalidConfiguration,
                    "API token \(token.name): the secret needs at least 16 characters"
                )
            }
            return token
        }
    }

    /// A random 32-character secret.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt32(alphabet.count)))] })
    }

    /// Compares in time that depends only on the secret's length, never on where the first difference is.
    func matches(_ presented: Substring) -> Bool {
        let expected = Array(self.secret.utf8)
        let given = Array(presented.utf8)
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}
