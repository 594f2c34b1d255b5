import Edda
import Foundation
import Synchronization

// The examples of Edda's "Core Concepts", in Swift.

/// Which activity bodies ran in this process, so the demo can say what was replayed.
let executedSteps = Mutex<[String]>([])

/// Writes a line straight to standard output (unbuffered), so parent and child processes
/// interleave correctly and nothing is lost when a process is killed.
func out(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func say(_ line: String) {
    out("   [pid \(ProcessInfo.processInfo.processIdentifier)] \(line)")
}

// MARK: - Workflows vs. Activities: user_signup

struct Account: Codable, Sendable {
    var userID: String
    var email: String
}

struct SignupResult: Codable, Sendable {
    var userID: String
    var status: String
}

let createAccount = Activity("create_account") { (ctx, email: String, name: String) -> Account in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ create_account ran")
    return Account(userID: "user-" + ctx.instanceID.prefix(8), email: email)
}

let sendEmail = Activity("send_email") { (ctx, email: String, message: String) -> [String: String] in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ send_email ran: \(message)")
    // A real mailer would take ctx.idempotencyKey so a retried send is deduplicated.
    return ["sent": "true", "message_id": ctx.idempotencyKey]
}

let setupDefaultSettings = Activity("setup_default_settings") { (ctx, userID: String) -> Bool in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ setup_default_settings ran")
    return true
}

let userSignup = Workflow("user_signup") { (ctx, email: String, name: String) -> SignupResult in
    let user = try await createAccount(ctx, email, name)
    _ = try await sendEmail(ctx, email, "Welcome, \(name)!")
    _ = try await setupDefaultSettings(ctx, user.userID)
    return SignupResult(userID: user.userID, status: "active")
}

// MARK: - Durable Execution: the Replay Example

struct Profile: Codable, Sendable {
    var userID: String
    var profile: String
}

let createUser = Activity("create_user") { (ctx, userID: String) -> [String: String] in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ create_user ran (fresh)")
    try await Task.sleep(for: .milliseconds(100))
    return ["user_id": userID, "email": "\(userID)@example.com"]
}

let sendWelcomeEmail = Activity("send_welcome_email") { (ctx, email: String) -> Bool in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ send_welcome_email ran (fresh)")
    try await Task.sleep(for: .milliseconds(200))
    return true
}

let setupProfile = Activity("setup_profile") { (ctx, userID: String) -> Profile in
    executedSteps.withLock { $0.append(ctx.stepID) }
    say("  ▶ setup_profile ran (fresh)")
    try await Task.sleep(for: .milliseconds(100))
    return Profile(userID: userID, profile: "ready")
}

/// `crashAfter`: the step after which this process kills itself with SIGKILL (0 = never).
func longRunningWorkflow(crashAfter: Int) -> Workflow<String, Profile> {
    Workflow("long_running_workflow") { (ctx, userID: String) -> Profile in
        func note(_ text: String, replayed: Bool) {
            say(replayed ? text.padding(toLength: 34, withPad: " ", startingAt: 0) + "(replayed from history)" : text)
        }
        func crashIfAsked(after step: Int) {
            guard step == crashAfter, !ctx.isReplaying else { return }
            say("💥 killing this process with SIGKILL after step \(step)")
            kill(getpid(), SIGKILL)
        }

        say("Step 0: Starting workflow for \(userID)")
        var replayed = ctx.isReplaying
        let result1 = try await createUser(ctx, userID)
        note("Step 1: User created", replayed: replayed)
        crashIfAsked(after: 1)

        replayed = ctx.isReplaying
        _ = try await sendWelcomeEmail(ctx, result1["email"] ?? "")
        note("Step 2: Email sent", replayed: replayed)
        crashIfAsked(after: 2)

        replayed = ctx.isReplaying
        let result3 = try await setupProfile(ctx, userID)
        note("Step 3: Profile setup", replayed: replayed)
        return result3
    }
}

// MARK: - Type Safety: process_order with a validated input

struct OrderInput: Codable, Sendable, Validatable {
    var orderID: String
    var customerEmail: String
    var amount: Double

    func validate() throws {
        guard orderID.wholeMatch(of: /ORD-\d+/) != nil else {
            throw ValidationError(field: "orderID", "must match ^ORD-\\d+$")
        }
        guard amount > 0 else {
            throw ValidationError(field: "amount", "must be greater than 0")
        }
    }
}

struct OrderResult: Codable, Sendable {
    var orderID: String
    var status: String
    var total: Double
}

let processOrder = Workflow("process_order") { (ctx, input: OrderInput) -> OrderResult in
    OrderResult(orderID: input.orderID, status: "completed", total: (input.amount * 1.1 * 100).rounded() / 100)
}

// MARK: - The Saga Pattern: order_workflow

struct Reservation: Codable, Sendable {
    var reserved: Bool
    var itemID: String
}

let cancelReservation = Compensation("cancel_reservation") { (ctx, reservation: Reservation, itemID: String) in
    say("❌ Cancelled reservation for \(itemID)")
}

let reserveInventory = Activity("reserve_inventory") { (ctx, itemID: String) -> Reservation in
    say("✅ Reserved \(itemID)")
    return Reservation(reserved: true, itemID: itemID)
}.onFailure(cancelReservation)

let chargePayment = Activity("charge_payment") { (ctx, amount: Double) -> String in
    say("💥 charge_payment fails!")
    throw TerminalError("card declined")
}

let orderWorkflow = Workflow("order_workflow") { (ctx, item1: String, item2: String) -> String in
    _ = try await reserveInventory(ctx, item1)   // Step 1
    _ = try await reserveInventory(ctx, item2)   // Step 2
    _ = try await chargePayment(ctx, 99.0)       // Step 3: fails!
    return "completed"
}
