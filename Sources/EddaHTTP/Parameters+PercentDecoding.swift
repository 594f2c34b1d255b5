import Foundation
import Hummingbird

extension Parameters {
    /// A path parameter with its percent-encoding removed: Hummingbird matches routes on the path as
    /// sent, so an instance ID with `/`, `@`, a space or non-ASCII characters arrives encoded
    /// (`parent%2Fchild%3A1`), and the route must decode it. Invalid encoding is a 400 naming it.
    func decoded(_ name: String) throws -> String {
        let raw = try require(name)
        guard let value = raw.removingPercentEncoding else {
            throw APIError.badRequest(
                "The path segment '\(raw)' is not valid percent-encoding: encode the \(name) as one path segment (as encodeURIComponent does).",
                type: "invalid_path", field: name
            )
        }
        return value
    }
}
