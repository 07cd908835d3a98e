import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The dashboard: one page and its script and styles over the admin API, with no build step. It asks for a token
/// (or takes one from the URL's fragment, `#/?token=…`, which browsers never send to a server) and calls the API
/// with it, so it needs no session of its own and shows nothing without a valid token.
///
/// ```swift
/// router.addRoutes(admin.routes(), atPath: "/conveyor/api")
/// router.addRoutes(ConveyorDashboard(apiPath: "/conveyor/api").routes(), atPath: "/conveyor")
/// ```
public struct ConveyorDashboard: Sendable {
    /// Where the admin API is mounted, as the browser reaches it.
    public var apiPath: String

    public init(apiPath: String) {
        self.apiPath = apiPath
    }

    /// `GET /` (the page), `/dashboard.js` and `/dashboard.css`.
    public func routes<Context: RequestContext>(
        context: Context.Type = BasicRequestContext.self
    )
        -> RouteCollection<Context>
    {
        let routes = RouteCollection(context: Context.self)
        let page = Array(self.page.utf8)
        routes.get("/") { _, _ in Self.asset(page, type: "text/html; charset=utf-8") }
        routes.get("/dashboard.js") { _, _ in
            Self.asset(PackageResources.dashboard_js, type: "text/javascript; charset=utf-8")
        }
        routes.get("/dashboard.css") { _, _ in
            Self.asset(PackageResources.dashboard_css, type: "text/css; charset=utf-8")
        }
        return routes
    }

    private static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        // The page loads only its own script and styles and talks only to its own origin.
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private var page: String {
        let api = self.apiPath.replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(
            of: "<",
            with: "&lt;"
        )
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="conveyor-api" content="\(api)">
            <title>Conveyor</title>
            <link rel="stylesheet" href="dashboard.css">
            </head>
            <body>
            <header>
              <span class="brand">Conveyor</span>
              <nav>
                <a href="#/" data-view="overview">Overview</a>
                <a href="#/jobs" data-view="jobs">Jobs</a>
                <a href="#/dlq" data-view="dlq">Dead letters</a>
                <a href="#/queues" data-view="queues">Queues</a>
                <a href="#/workflows" data-view="workflows">Workflows</a>
                <a href="#/schedules" data-view="schedules">Schedules</a>
                <a href="#/workers" data-view="workers">Workers</a>
              </nav>
              <span class="status"></span>
            </header>
            <main></main>
            <script src="dashboard.js"></script>
            </body>
            </html>
            """
    }
}
