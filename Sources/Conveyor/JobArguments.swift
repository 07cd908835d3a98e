/// The arguments of a job type. The type's ``kind`` names it in the database; its `Codable` value is stored as
/// JSONB in the `args` column.
///
/// ```swift
/// struct SendReceipt: JobArguments {
///     static let kind = "send-receipt"
///     var orderID: Int
/// }
/// ```
///
/// The kind is a stable contract with every stored job: renaming it strands jobs already enqueued under the old
/// name (they are dead-lettered with `UNKNOWN_KIND`).
public protocol JobArguments: Codable, Sendable {
    /// The stable name of the job type, 1–128 characters from `A-Z a-z 0-9 _ - . :`.
    static var kind: String { get }

    /// Options applied to every enqueue of this type unless the call overrides them.
    static var defaultOptions: JobOptions { get }
}

extension JobArguments {
    public static var defaultOptions: JobOptions { JobOptions() }
}
