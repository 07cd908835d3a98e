import Conveyor
import NIOCore

/// Rows in the text format of PostgreSQL's `COPY … FROM STDIN`: columns separated by tabs, rows ended by a
/// newline, `\N` for NULL, and a backslash before any backslash, tab, newline or carriage return in a value.
enum CopyText {
    /// Appends the row of ``PostgresJobStore``'s copy columns for `job` with `id`.
    static func appendRow(id: Int64, job: NewJob, to buffer: inout ByteBuffer) {
        buffer.writeString(String(id))
        buffer.writeInteger(UInt8(ascii: "\t"))
        Self.appendValue(job.kind, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
        Self.appendValue(job.queue, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
        Self.appendValue(job.namespace, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
        Self.appendValue(job.argumentsJSON, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
        buffer.writeString(String(job.priority))
        buffer.writeInteger(UInt8(ascii: "\t"))
        buffer.writeString(String(job.maxAttempts))
        buffer.writeInteger(UInt8(ascii: "\t"))
        if let timeout = job.timeoutMilliseconds {
            buffer.writeString(String(timeout))
        } else {
            buffer.writeStaticString("\\N")
        }
        buffer.writeInteger(UInt8(ascii: "\t"))
        // An array literal with every element quoted, so that a tag spelled `null` stays a string. Tags are
        // validated labels (letters, digits, `_`, `-`, `.`, `:`), with nothing to escape inside the quotes.
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, tag) in job.tags.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeInteger(UInt8(ascii: "\""))
            Self.appendValue(tag, to: &buffer)
            buffer.writeInteger(UInt8(ascii: "\""))
        }
        buffer.writeInteger(UInt8(ascii: "}"))
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    /// Appends `value` with the characters that COPY's text format gives a meaning escaped.
    static func appendValue(_ value: String, to buffer: inout ByteBuffer) {
        var value = value
        value.withUTF8 { bytes in
            guard bytes.contains(where: Self.needsEscape) else {
                buffer.writeBytes(bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
                case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
                case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
                default: buffer.writeInteger(byte)
                }
            }
        }
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            || byte == UInt8(ascii: "\r")
    }
}
