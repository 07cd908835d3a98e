import Conveyor
import ConveyorHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The admin API served on loopback by a real server (HummingbirdTesting's live mode) over the test's schema, and
/// a client that speaks JSON to it.
struct AdminServer: Sendable {
    static let secret = "s3cret-s3cret-s3cret"
    static let tokens = [
        APIToken(name: "ops", secret: Self.secret), APIToken(name: "deploy", secret: "d" + Self.secret),
    ]

    let client: any TestClientProtocol

    /// The address the browser loads.
    var baseURL: String { "http://127.0.0.1:\(self.client.port ?? 0)" }

    /// Runs `body` against a live server whose API is mounted at `/api` and the dashboard at `/`.
    static func with(
        _ db: TestDatabase,
        _ body: @Sendable (AdminServer) async throws -> Void
    ) async throws {
        let api = try ConveyorAdminAPI(client: db.client, configuration: .init(tokens: Self.tokens))
        let router = Router()
        router.addRoutes(api.routes(), atPath: "/api")
        router.addRoutes(ConveyorDashboard(apiPath: "/api").routes(), atPath: "/")
        let application = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await application.test(.live) { client in try await body(AdminServer(client: client)) }
    }

    /// A response: status, the error code when there is one, and the body as JSON.
    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var text: String
        var headers: HTTPFields

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(self.text.utf8))) as? [String: Any] ?? [:]
        }

        var errorCode: String? { (self.json["error"] as? [String: Any])?["code"] as? String }
    }

    enum Auth: Sendable {
        case bearer(String)
        case apiKey(String)
        case none
    }

    func call(
        _ method: HTTPRequest.Method,
        _ path: String,
        body: String? = nil,
        auth: Auth = .bearer(AdminServer.secret)
    ) async throws -> Reply {
        var headers: HTTPFields = [:]
        switch auth {
        case .bearer(let secret): headers[.authorization] = "Bearer \(secret)"
        case .apiKey(let secret): headers[HTTPField.Name("x-api-key")!] = secret
        case .none: break
        }
        if body != nil { headers[.contentType] = "application/json" }
        let response = try await self.client.execute(
            uri: "/api" + path,
            method: method,
            headers: headers,
            body: body.map { ByteBuffer(string: $0) }
        )
        return Reply(status: response.status, text: String(buffer: response.body), headers: response.headers)
    }

    func get(_ path: String, auth: Auth = .bearer(AdminServer.secret)) async throws -> Reply {
        try await self.call(.get, path, auth: auth)
    }

    func post(_ path: String, _ body: String? = nil, auth: Auth = .bearer(AdminServer.secret)) async throws -> Reply {
        try await self.call(.post, path, body: body, auth: auth)
    }
}
