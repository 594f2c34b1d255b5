public import Edda
import Foundation

/// The workflows of `edda-example-viewer`: something for the viewer's start forms to start.
///
/// - `place_order`, a saga: reserves stock, charges the card, books a shipment. A card number ending
///   in `0002` is declined, and the reservation is released (the instance fails, compensated).
/// - `collect_payment` waits for a `payment.received` event (send one from the instance's page),
///   and marks the invoice overdue when none comes before its due time.
/// - `onboard_customer` creates an account and runs the child workflow `send_welcome_kit`.
///
/// ```swift
/// let app = EddaApp(store: try SQLiteStore(path: "edda-example.sqlite"), serviceName: "edda-example")
/// try ViewerExample.register(on: app)
/// ```
public enum ViewerExample {
    /// Registers every workflow of the example (the child `send_welcome_kit` too) with `app`.
    public static func register(on app: EddaApp) throws {
        try app.register(placeOrder)
        try app.register(collectPayment)
        try app.register(onboardCustomer)
        try app.register(sendWelcomeKit)
    }

    /// The names ``register(on:)`` registers, in that order.
    public static let workflowNames = [placeOrder.name, collectPayment.name, onboardCustomer.name, sendWelcomeKit.name]

    /// Starts one instance of each workflow, so that the viewer's list has something to show: an
    /// order that completes, one whose card is declined (compensated), an invoice waiting for its
    /// payment, and an onboarding with its child.
    ///
    /// - Returns: The IDs of the instances started.
    @discardableResult
    public static func startSamples(on app: EddaApp) async throws -> [String] {
        let line = OrderLine(sku: "BOOK-42", quantity: 2)
        return [
            try await app.start(
                placeOrder,
                Order(orderID: "ORD-1001", customerEmail: "ada@example.com", lines: [line], cardNumber: "4242424242424242", shipping: .standard),
                instanceID: "sample-order-ORD-1001"
            ).instanceID,
            try await app.start(
                placeOrder,
                Order(orderID: "ORD-1002", customerEmail: "bo@example.com", lines: [line], cardNumber: "4000000000000002", shipping: .express),
                instanceID: "sample-order-ORD-1002"
            ).instanceID,
            try await app.start(
                collectPayment, Invoice(invoiceID: "INV-2001", customerEmail: "ada@example.com", amount: 59.80, dueInMinutes: 60),
                instanceID: "sample-invoice-INV-2001"
            ).instanceID,
            try await app.start(
                onboardCustomer, Signup(email: "cy@example.com", name: "Cy", plan: .team, referralCode: nil), instanceID: "sample-signup-cy"
            ).instanceID,
        ]
    }

    // MARK: - place_order: a saga

    /// How fast an order ships.
    public enum Shipping: String, Codable, Sendable, CaseIterable {
        case standard, express
    }

    /// One line of an order.
    public struct OrderLine: Codable, Sendable, Equatable {
        /// The product's stock-keeping unit.
        public var sku: String
        /// How many (at least 1).
        public var quantity: Int

        /// A line of `quantity` units of `sku`.
        public init(sku: String, quantity: Int) {
            self.sku = sku
            self.quantity = quantity
        }
    }

    /// `place_order`'s input, checked before an instance exists.
    public struct Order: Codable, Sendable, Equatable, Validatable {
        /// The order's ID: `ORD-` and digits.
        public var orderID: String
        /// Where the confirmation goes.
        public var customerEmail: String
        /// What is ordered: at least one line.
        public var lines: [OrderLine]
        /// A card number ending in `0002` is declined.
        public var cardNumber: String
        /// How fast it ships (express costs 15 more).
        public var shipping: Shipping

        /// An order; ``validate()`` checks it before an instance exists.
        public init(orderID: String, customerEmail: String, lines: [OrderLine], cardNumber: String, shipping: Shipping) {
            self.orderID = orderID
            self.customerEmail = customerEmail
            self.lines = lines
            self.cardNumber = cardNumber
            self.shipping = shipping
        }

        /// Refuses an ID other than `ORD-<digits>`, an email without `@`, no lines, a quantity below
        /// 1, and a card number that is not 12 or more digits.
        public func validate() throws {
            guard orderID.wholeMatch(of: /ORD-\d+/) != nil else { throw ValidationError(field: "orderID", "must look like ORD-1001") }
            guard customerEmail.contains("@") else { throw ValidationError(field: "customerEmail", "must be an email address") }
            guard !lines.isEmpty else { throw ValidationError(field: "lines", "must hold at least one line") }
            for line in lines where line.quantity < 1 {
                throw ValidationError(field: "quantity", "must be at least 1 (\(line.sku))")
            }
            guard cardNumber.count >= 12, cardNumber.allSatisfy(\.isNumber) else {
                throw ValidationError(field: "cardNumber", "must be 12 or more digits, such as 4242424242424242")
            }
        }
    }

    /// What a placed order ends with.
    public struct OrderConfirmation: Codable, Sendable, Equatable {
        /// The order's ID.
        public var orderID: String
        /// The stock reservation.
        public var reservationID: String
        /// The card charge.
        public var chargeID: String
        /// The shipment's tracking number.
        public var trackingNumber: String
        /// What was charged: the lines at the catalogue's prices, and express shipping.
        public var total: Double
    }

    /// A unit price per SKU: the example's catalogue.
    static func price(of sku: String) -> Double {
        Double(sku.unicodeScalars.reduce(0) { $0 + Int($1.value) } % 50) + 9.90
    }

    struct Reservation: Codable, Sendable {
        var reservationID: String
        var units: Int
    }

    struct Charge: Codable, Sendable {
        var chargeID: String
        var amount: Double
    }

    static let releaseStock = Compensation("release_stock") { (_: ActivityContext, reservation: Reservation, _: Order) in
        // A real inventory service would release reservation.reservationID here.
    }

    static let reserveStock = Activity("reserve_stock") { (ctx: ActivityContext, order: Order) -> Reservation in
        Reservation(reservationID: "res-\(ctx.idempotencyKey.suffix(8))", units: order.lines.reduce(0) { $0 + $1.quantity })
    }.onFailure(releaseStock)

    static let refundCard = Compensation("refund_card") { (_: ActivityContext, charge: Charge, _: String, _: Double) in
        // A real payment provider would refund charge.chargeID here.
    }

    static let chargeCard = Activity("charge_card") { (ctx: ActivityContext, cardNumber: String, amount: Double) -> Charge in
        // Stripe's test card 4000 0000 0000 0002 is declined: retrying cannot help.
        guard !cardNumber.hasSuffix("0002") else { throw TerminalError("card declined (a card number ending in 0002 always is)") }
        return Charge(chargeID: "ch-\(ctx.idempotencyKey.suffix(8))", amount: amount)
    }.onFailure(refundCard)

    static let bookShipment = Activity("book_shipment") { (ctx: ActivityContext, orderID: String, shipping: Shipping) -> String in
        "\(shipping == .express ? "EXP" : "STD")-\(orderID)-\(ctx.idempotencyKey.suffix(4))"
    }

    /// `place_order`: reserve, charge, ship; a failure releases what was done, newest first.
    public static let placeOrder = Workflow("place_order") { (ctx: WorkflowContext, order: Order) -> OrderConfirmation in
        let total = order.lines.reduce(0) { $0 + Double($1.quantity) * price(of: $1.sku) } + (order.shipping == .express ? 15 : 0)
        let reservation = try await reserveStock(ctx, order)
        let charge = try await chargeCard(ctx, order.cardNumber, total)
        let tracking = try await bookShipment(ctx, order.orderID, order.shipping)
        return OrderConfirmation(
            orderID: order.orderID, reservationID: reservation.reservationID, chargeID: charge.chargeID, trackingNumber: tracking, total: total
        )
    }

    // MARK: - collect_payment: waits for an event

    /// `collect_payment`'s input.
    public struct Invoice: Codable, Sendable, Equatable, Validatable {
        /// The invoice's ID.
        public var invoiceID: String
        /// Whom it is sent to.
        public var customerEmail: String
        /// What is due (more than 0).
        public var amount: Double
        /// How long to wait for the payment before the invoice is overdue.
        public var dueInMinutes: Int

        /// An invoice due in `dueInMinutes`.
        public init(invoiceID: String, customerEmail: String, amount: Double, dueInMinutes: Int) {
            self.invoiceID = invoiceID
            self.customerEmail = customerEmail
            self.amount = amount
            self.dueInMinutes = dueInMinutes
        }

        /// Refuses an amount of 0 or less and a due time outside 1 minute to a week.
        public func validate() throws {
            guard amount > 0 else { throw ValidationError(field: "amount", "must be greater than 0") }
            guard (1...10_080).contains(dueInMinutes) else { throw ValidationError(field: "dueInMinutes", "must be from 1 to 10080 (a week)") }
        }
    }

    /// The data of a `payment.received` event.
    public struct Payment: Codable, Sendable, Equatable {
        /// What was paid: at least the invoice's amount to settle it.
        public var amount: Double
        /// The payment's reference, in the workflow's result.
        public var reference: String

        /// A payment of `amount` with `reference`.
        public init(amount: Double, reference: String) {
            self.amount = amount
            self.reference = reference
        }
    }

    static let sendInvoice = Activity("send_invoice") { (ctx: ActivityContext, invoice: Invoice) -> String in
        "msg-\(ctx.idempotencyKey.suffix(8))"
    }

    static let sendReminder = Activity("send_reminder") { (ctx: ActivityContext, invoice: Invoice) -> String in
        "msg-\(ctx.idempotencyKey.suffix(8))"
    }

    /// `collect_payment`: sends the invoice, then waits for `payment.received` until it is due.
    /// Ends `paid <reference>`, `underpaid <amount>` or `overdue`.
    public static let collectPayment = Workflow("collect_payment") { (ctx: WorkflowContext, invoice: Invoice) -> String in
        _ = try await sendInvoice(ctx, invoice)
        do {
            let payment = try await ctx.waitForEvent(type: "payment.received", as: Payment.self, timeout: .seconds(60 * invoice.dueInMinutes))
            return payment.data.amount >= invoice.amount ? "paid \(payment.data.reference)" : "underpaid \(payment.data.amount)"
        } catch is WaitTimeoutError {
            _ = try await sendReminder(ctx, invoice)
            return "overdue"
        }
    }

    // MARK: - onboard_customer: a child workflow

    /// A plan to sign up for.
    public enum Plan: String, Codable, Sendable, CaseIterable {
        case free, pro, team
    }

    /// `onboard_customer`'s input.
    public struct Signup: Codable, Sendable, Equatable, Validatable {
        /// The customer's email address.
        public var email: String
        /// The customer's name (not empty).
        public var name: String
        /// The plan signed up for: a paid one gets a workspace.
        public var plan: Plan
        /// Who referred them, if anyone.
        public var referralCode: String?

        /// A sign-up.
        public init(email: String, name: String, plan: Plan, referralCode: String?) {
            self.email = email
            self.name = name
            self.plan = plan
            self.referralCode = referralCode
        }

        /// Refuses an email without `@` and an empty name.
        public func validate() throws {
            guard email.contains("@") else { throw ValidationError(field: "email", "must be an email address") }
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError(field: "name", "must not be empty") }
        }
    }

    /// `send_welcome_kit`'s input.
    public struct WelcomeKit: Codable, Sendable, Equatable {
        /// The account created.
        public var accountID: String
        /// Where the welcome email goes.
        public var email: String
        /// The plan: a paid one gets a workspace.
        public var plan: Plan
    }

    /// What an onboarding ends with.
    public struct Onboarded: Codable, Sendable, Equatable {
        /// The account created.
        public var accountID: String
        /// What the welcome kit did: the email, and the workspace on a paid plan.
        public var welcome: [String]
    }

    static let createAccount = Activity("create_account") { (ctx: ActivityContext, signup: Signup) -> String in
        "acct-\(ctx.idempotencyKey.suffix(8))"
    }

    static let sendWelcomeEmail = Activity("send_welcome_email") { (ctx: ActivityContext, email: String) -> String in
        "welcome email to \(email)"
    }

    static let provisionWorkspace = Activity("provision_workspace") { (ctx: ActivityContext, accountID: String, plan: Plan) -> String in
        "\(plan.rawValue) workspace for \(accountID)"
    }

    /// `send_welcome_kit`, the child: a welcome email, and a workspace on a paid plan.
    public static let sendWelcomeKit = Workflow("send_welcome_kit") { (ctx: WorkflowContext, kit: WelcomeKit) -> [String] in
        var done = [try await sendWelcomeEmail(ctx, kit.email)]
        if kit.plan != .free { done.append(try await provisionWorkspace(ctx, kit.accountID, kit.plan)) }
        return done
    }

    /// `onboard_customer`: creates the account, then runs `send_welcome_kit` as its child.
    public static let onboardCustomer = Workflow("onboard_customer") { (ctx: WorkflowContext, signup: Signup) -> Onboarded in
        let accountID = try await createAccount(ctx, signup)
        let welcome = try await ctx.runChild(sendWelcomeKit, WelcomeKit(accountID: accountID, email: signup.email, plan: signup.plan))
        return Onboarded(accountID: accountID, welcome: welcome)
    }
}
