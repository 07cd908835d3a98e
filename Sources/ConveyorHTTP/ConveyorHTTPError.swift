import Conveyor
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error answered by the admin API: a status and a body `{"error": {"code": …, "message": …}}` whose code is
/// stable. Every ``ConveyorError`` becomes one through ``status(for:)``, the one place that maps codes to statuses.
public struct ConveyorHTTPError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// Extra headers (`WWW-Authenticate` on a 401).
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public init(_ error: ConveyorError) {
        self.init(Self.status(for: error.code), code: error.code.rawValue, error.message)
    }

    /// Codes of the API's own refusals.
    public enum Code {
        public static let unauthorized = "UNAUTHORIZED"
        public static let malformedJSON = "MALFORMED_JSON"
        public static let bodyTooLarge = "BODY_TOO_LARGE"
        public static let invalidParameter = "INVALID_PARAMETER"
        public static let notFound = "NOT_FOUND"
        public static let internalError = "INTERNAL_ERROR"
    }

    static func parameter(_ message: String) -> ConveyorHTTPError {
        ConveyorHTTPError(.badRequest, code: Code.invalidParameter, message)
    }

    static func malformed(_ message: String) -> ConveyorHTTPError {
        ConveyorHTTPError(.badRequest, code: Code.malformedJSON, message)
    }

    /// The HTTP status of each ``ConveyorError/Code``: the only place the mapping exists.
    public static func status(for code: ConveyorError.Code) -> HTTPResponse.Status {
        switch code {
        case .jobNotFound, .workflowNotFound, .stepNotFound, .scheduleNotFound:
            .notFound
        case .invalidJobState, .invalidWorkflowState, .duplicateJob, .workflowIDInUse:
            .conflict
        case .argumentsTooLarge, .outputTooLarge:
            .contentTooLarge
        case .rateLimited:
            .tooManyRequests
        case .malformedArguments, .invalidQueueName, .invalidKind, .invalidNamespace, .invalidOption, .invalidFilter,
            .unknownWorkflow, .invalidSchemaName, .invalidCron, .invalidTimeZone, .cronNeverFires,
            .invalidPoolName, .invalidWeight:
            .badRequest
        case .databaseUnavailable, .databaseTimeout, .noConnection, .schemaMismatch, .schemaTooNew:
            .serviceUnavailable
        default:
            .internalServerError
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = APIJSON.render(["error": ["code": self.code, "message": self.message] as [String: Any]])
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
