import Conveyor
import ConveyorCore

/// A validated PostgreSQL schema name and its quoted form.
///
/// This is the only value ever spliced into SQL text: it is checked once against ``NameValidation/checkSchema(_:)``
/// (lower-case letters, digits and underscores), so quoting it is safe. Every other value reaches SQL as a bind.
public struct SchemaName: Sendable, Hashable, CustomStringConvertible {
    /// The name as given, e.g. `conveyor`.
    public let name: String
    /// The name quoted as an identifier, e.g. `"conveyor"`.
    public let quoted: String

    /// - Throws: ``ConveyorError`` with code `INVALID_SCHEMA_NAME`.
    public init(_ name: String) throws {
        if let violation = NameValidation.checkSchema(name) {
            throw ConveyorError(
                .invalidSchemaName,
                "invalid schema name (use lower-case letters, digits and underscores): \(violation.explanation)"
            )
        }
        self.name = name
        self.quoted = "\"\(name)\""
    }

    public var description: String { self.name }

    /// The NOTIFY channel on which inserts into this schema are announced, with the queue as payload.
    var insertChannel: String { "\(self.name).jobs_available" }
}
