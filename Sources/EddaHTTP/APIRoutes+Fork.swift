package import Edda
import Foundation
import Hummingbird

/// The JSON API's fork route: a new instance from another's history up to a step.
extension APIRoutes {
    func registerFork<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/api/instances/:id/fork", .post) { request, context in
            let id = try context.parameters.decoded("id")
            let shape = #"{"from_step": "charge_card:1", "instance_id": "optional"}"#
            let document = try await jsonObject(request, shape: shape)
            for key in document.keys.sorted() where key != "from_step" && key != "instance_id" {
                throw APIError.badRequest("Unknown key '\(key)' in the body. The body takes: \(shape).", type: "unknown_key", field: key)
            }
            guard let step = try Self.optionalString("from_step", in: document, otherwise: "the step to run again from"), !step.isEmpty else {
                throw APIError.badRequest(
                    "'from_step' is required: the step ID to run again from, as the instance's history names it: \(shape).",
                    type: "invalid_body", field: "from_step"
                )
            }
            let newID = try Self.optionalString("instance_id", in: document, otherwise: "left out for a new UUID")
            let fork = try await app.fork(id, fromStep: step, instanceID: newID)
            return jsonResponse(ForkText.document(of: fork), status: .created)
        }
    }
}

/// A fork as the API and `edda fork --json` give it.
package enum ForkText {
    package static func document(of fork: ForkedInstance) -> [String: Any] {
        [
            "instance_id": fork.instanceID, "forked_from": fork.original, "from_step": fork.fromStep, "copied_records": fork.copiedRecords,
            "rerun_steps": fork.rerunSteps, "notes": fork.notes,
        ]
    }
}
