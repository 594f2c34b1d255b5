@_spi(EddaStores) public import Edda
import Foundation
import Synchronization
import Testing

/// The behaviour every ``Store`` backend must have, as checks a backend's test target runs:
///
/// ```swift
/// @Test(arguments: StoreConformance.allCases)
/// func conformance(_ check: StoreConformance) async throws {
///     try await check.run { body in try await body(SQLiteStore.inMemory()) }
/// }
/// ```
///
/// Each check gets a fresh, empty store from the factory.
public enum StoreConformance: String, CaseIterable, Sendable {
    case createAppendFinish
    case createIsIdempotent
    case staleTokenCannotWrite
    case finishedInstanceRefusesWrites
    case claimsAreExclusiveUnderConcurrency
    case claimSkipsLeasedFinishedWaitingAndUnknownWorkflows
    case renewReportsLostLeases
    case releaseMakesReadyAgain
    case paginationAndCounts
    case oneOutcomePerStep
    case signalsAnnounceReadyWorkAndOutcomes
    case waitersAreClaimedFromTheirDeadlineAndFoundByTheNextOne
    case cancellationIsMarkedWakesWaitersAndSparesFinishedInstances
    case messagesAreConsumedOnceIntoHistory
    case broadcastEventsTimeoutsAndChannelModes
    case cancellationCascadesAndSparesCancelledOrLateWaiters
    case searchByAKeyAndValueInTheInput
    case retryMovesTheFailureAsideAndMakesTheInstanceReady
    case historyIsReadAPageAtATime
    case continueAsNewKeepsTheLeaseAndMovesItsTokenOn
    case aChildCreatedUnderACancelledOrFinishedParentIsBornCancelRequested
    case finishingClearsAPendingCancellationAndALaterOneChangesNothing
    case aChildsReportGoesIntoItsWaitingParentsHistoryOrIsKeptForIt
    case whatAnInstanceWaitsForIsReadFromItsWaitRowOrItsReadyTime
    case pagesGoBackWithABeforeCursorAndChildrenAreListedByParent
    case queuedInstancesAreAdmittedWithinTheirQueuesLimits
    case queuedInstancesAreAdmittedByPriorityThenOldestFirst
    case aDeduplicationIDIsRefusedWhileItsHolderRunsAndFreeOnceItFinishes
    case aRateLimitAdmitsAtMostItsLimitPerPeriodWhateverTheConcurrency
    case aPartitionedQueuesLimitsApplyToEachPartitionKey
    case schedulesAreInsertedOnceAndWrittenByCompareAndSet
    case deadlinesAreSetInheritedMovedOnAndHonouredByReleases
    case aQueuedInstancesDeadlineCountsFromItsStart
    case aQueuedInstanceLeavesTheLineWhenCancelledOrPastItsQueueTimeout
    case aForkCopiesTheRecordsBeforeItsStepAndLeavesTheOriginal
    case applicationVersionsAreRecordedKeptCountedAndClaimedByTheirWorkers

    /// Hands `body` a fresh store, and cleans up after it.
    public typealias Factory = @Sendable (@Sendable (any Store) async throws -> Void) async throws -> Void

    /// Runs the check on a fresh store from `factory`. Returns whether it ran to its end: `false`
    /// means the factory never handed over a store, which the caller should fail on.
    @discardableResult
    public func run(_ factory: Factory) async throws -> Bool {
        let completed = Completion()
        try await factory { store in
            try await store.attachWorker("conformance")
            defer { Task { try? await store.detachWorker("conformance") } }
            switch self {
            case .createAppendFinish: try await Self.createAppendFinish(store)
            case .createIsIdempotent: try await Self.createIsIdempotent(store)
            case .staleTokenCannotWrite: try await Self.staleTokenCannotWrite(store)
            case .finishedInstanceRefusesWrites: try await Self.finishedInstanceRefusesWrites(store)
            case .claimsAreExclusiveUnderConcurrency: try await Self.claimsAreExclusive(store)
            case .claimSkipsLeasedFinishedWaitingAndUnknownWorkflows: try await Self.claimSkips(store)
            case .renewReportsLostLeases: try await Self.renewReportsLostLeases(store)
            case .releaseMakesReadyAgain: try await Self.releaseMakesReadyAgain(store)
            case .paginationAndCounts: try await Self.paginationAndCounts(store)
            case .oneOutcomePerStep: try await Self.oneOutcomePerStep(store)
            case .signalsAnnounceReadyWorkAndOutcomes: try await Self.signalsAnnounce(store)
            case .waitersAreClaimedFromTheirDeadlineAndFoundByTheNextOne: try await Self.waitersByDeadline(store)
            case .cancellationIsMarkedWakesWaitersAndSparesFinishedInstances: try await Self.cancellation(store)
            case .messagesAreConsumedOnceIntoHistory: try await Self.messagesConsumedOnce(store)
            case .broadcastEventsTimeoutsAndChannelModes: try await Self.broadcastEventsAndModes(store)
            case .cancellationCascadesAndSparesCancelledOrLateWaiters: try await Self.cancellationAndWaiters(store)
            case .searchByAKeyAndValueInTheInput: try await Self.inputSearch(store)
            case .retryMovesTheFailureAsideAndMakesTheInstanceReady: try await Self.retryFromFailure(store)
            case .historyIsReadAPageAtATime: try await Self.historyPages(store)
            case .continueAsNewKeepsTheLeaseAndMovesItsTokenOn: try await Self.continueAsNewInPlace(store)
            case .aChildCreatedUnderACancelledOrFinishedParentIsBornCancelRequested: try await Self.childOfAStoppingParent(store)
            case .finishingClearsAPendingCancellationAndALaterOneChangesNothing: try await Self.finishClearsCancellation(store)
            case .aChildsReportGoesIntoItsWaitingParentsHistoryOrIsKeptForIt: try await Self.childReports(store)
            case .whatAnInstanceWaitsForIsReadFromItsWaitRowOrItsReadyTime: try await Self.waitingInstances(store)
            case .pagesGoBackWithABeforeCursorAndChildrenAreListedByParent: try await Self.pagingBackAndChildren(store)
            case .queuedInstancesAreAdmittedWithinTheirQueuesLimits: try await Self.queueLimits(store)
            case .queuedInstancesAreAdmittedByPriorityThenOldestFirst: try await Self.queuePriorityOrder(store)
            case .aDeduplicationIDIsRefusedWhileItsHolderRunsAndFreeOnceItFinishes: try await Self.queueDeduplication(store)
            case .aRateLimitAdmitsAtMostItsLimitPerPeriodWhateverTheConcurrency: try await Self.queueRateLimit(store)
            case .aPartitionedQueuesLimitsApplyToEachPartitionKey: try await Self.queuePartitions(store)
            case .schedulesAreInsertedOnceAndWrittenByCompareAndSet: try await Self.schedules(store)
            case .deadlinesAreSetInheritedMovedOnAndHonouredByReleases: try await Self.deadlines(store)
            case .aQueuedInstancesDeadlineCountsFromItsStart: try await Self.queuedDeadlines(store)
            case .aQueuedInstanceLeavesTheLineWhenCancelledOrPastItsQueueTimeout: try await Self.queueTimeouts(store)
            case .aForkCopiesTheRecordsBeforeItsStepAndLeavesTheOriginal: try await Self.forks(store)
            case .applicationVersionsAreRecordedKeptCountedAndClaimedByTheirWorkers: try await Self.applicationVersions(store)
            }
            completed.mark()
        }
        return completed.isMarked
    }

    // MARK: - Helpers

    static let leaseRequest = LeaseRequest(owner: "worker-a", duration: .seconds(30))

    static func new(_ id: String, workflow: String = "w", input: String = "[]") -> NewInstance {
        NewInstance(instanceID: id, workflowName: workflow, serviceName: "conformance", input: JSONPayload(json: input))
    }

    static func create(_ store: any Store, _ id: String, workflow: String = "w", leasedTo owner: String? = "worker-a") async throws -> Lease? {
        let outcome = try await store.createInstance(
            new(id, workflow: workflow), leasedTo: owner.map { LeaseRequest(owner: $0, duration: .seconds(30)) }
        )
        guard case .created(_, let lease) = outcome else {
            Issue.record("instance \(id) already existed")
            return nil
        }
        return lease
    }

    static func completed(_ id: String, _ step: String, position: Int? = nil, _ json: String) -> HistoryEvent {
        HistoryEvent(instanceID: id, stepID: step, position: position, name: "a", kind: .activityCompleted, payload: JSONPayload(json: json))
    }

    static func claim(
        _ store: any Store, owner: String, limit: Int = 10, workflows: [String] = ["w"], readyBy: Date = Date()
    ) async throws -> [ClaimedInstance] {
        try await store.claim(
            ClaimRequest(lease: LeaseRequest(owner: owner, duration: .seconds(30)), limit: limit, workflowNames: workflows, readyBy: readyBy)
        )
    }

    static func expectLeaseLost(_ operation: String, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("\(operation) under a lost lease succeeded", sourceLocation: sourceLocation)
        } catch let error as StoreError {
            #expect(error.code == .leaseLost, "\(operation): \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(operation) threw \(error), not StoreError.leaseLost", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Checks

    static func createAppendFinish(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "i1"))
        #expect(lease.instanceID == "i1" && lease.owner == "worker-a")
        let created = try #require(try await store.instance("i1"))
        #expect(created.status == .running)
        #expect(created.lastClaimedAt != nil, "created leased: its first run begins now")
        #expect(created.leaseOwner == "worker-a")
        #expect(created.input.json == "[]")

        try await store.append(completed("i1", "a:1", position: 1, "1"), lease: lease)
        try await store.append(completed("i1", "a:2", position: 2, "{\"x\":2}"), lease: lease)
        try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "3")))

        let history = try await store.history(of: "i1")
        #expect(history.map(\.stepID) == ["a:1", "a:2"])
        #expect(history.map(\.position) == [1, 2])
        #expect(history.map { $0.payload?.json } == ["1", "{\"x\":2}"])
        #expect(history[0].sequence < history[1].sequence)
        let finished = try #require(try await store.instance("i1"))
        #expect(finished.status == .completed)
        #expect(finished.output?.json == "3")
        #expect(finished.leaseOwner == nil, "finishing ends the lease")

        let failing = try #require(try await create(store, "i2"))
        try await store.markCompensating(lease: failing)
        #expect(try await store.instance("i2")?.status == .compensating)
        try await store.finishInstance(lease: failing, with: .failed(ErrorRecord(type: "E", message: "boom")))
        let failed = try #require(try await store.instance("i2"))
        #expect(failed.status == .failed)
        #expect(failed.error?.message == "boom")
    }

    static func createIsIdempotent(_ store: any Store) async throws {
        _ = try await create(store, "same")
        let again = try await store.createInstance(new("same", workflow: "other", input: "[1]"), leasedTo: leaseRequest)
        guard case .existing(let existing) = again else {
            Issue.record("a second create with the same ID inserted a row")
            return
        }
        #expect(existing.workflowName == "w")
        #expect(existing.input.json == "[]")
        let unleased = try await store.createInstance(new("free"), leasedTo: nil)
        guard case .created(let instance, let lease) = unleased else {
            Issue.record("create without a lease did not insert")
            return
        }
        #expect(lease == nil)
        #expect(instance.leaseOwner == nil)
    }

    /// Continue-as-new keeps the instance leased to its worker (the next run starts in place), with the
    /// token moved on: a write of the finished run still in flight is refused, not added to the new run.
    static func continueAsNewInPlace(_ store: any Store) async throws {
        let first = try #require(try await create(store, "i"))
        try await store.append(completed("i", "a:1", "1"), lease: first)
        let next = try await store.continueAsNew(lease: first, input: JSONPayload(json: "[2]"))
        #expect(next.owner == first.owner)
        #expect(next.token == first.token + 1)
        #expect(try await store.history(of: "i").isEmpty, "the finished run's history is archived")
        await expectLeaseLost("append from the finished run") { try await store.append(completed("i", "late:1", "9"), lease: first) }
        await expectLeaseLost("a second continue-as-new from the finished run") {
            _ = try await store.continueAsNew(lease: first, input: JSONPayload(json: "[3]"))
        }
        let instance = try #require(try await store.instance("i"))
        #expect(instance.leaseOwner == first.owner, "still leased: no claim needed")
        #expect(instance.runNumber == 2)
        #expect(try await claim(store, owner: "worker-b").isEmpty, "nobody else can claim it")
        try await store.append(completed("i", "a:1", "2"), lease: next)
        #expect(try await store.renew([next], for: .seconds(30)).isEmpty)
        try await store.finishInstance(lease: next, with: .completed(JSONPayload(json: "2")))
        #expect(try await store.history(of: "i").map(\.stepID) == ["a:1"])
        #expect(try await store.instance("i")?.status == .completed)
    }

    static func staleTokenCannotWrite(_ store: any Store) async throws {
        let stale = try #require(try await create(store, "i"))
        try await store.append(completed("i", "a:1", "1"), lease: stale)
        // The instance changes hands: released by A, claimed by B (a new token).
        try await store.release(stale, readyAt: nil)
        let claimed = try await claim(store, owner: "worker-b")
        let fresh = try #require(claimed.first?.lease)
        #expect(fresh.token > stale.token)
        #expect(fresh.owner == "worker-b")

        // A zombie with the old lease — same owner name, old token — changes nothing.
        let zombie = Lease(instanceID: "i", owner: "worker-b", token: stale.token)
        for lease in [stale, zombie] {
            await expectLeaseLost("append") { try await store.append(completed("i", "a:2", "2"), lease: lease) }
            await expectLeaseLost("append with a transaction") {
                try await store.append(completed("i", "a:3", "3"), with: StepTransaction(), lease: lease)
            }
            await expectLeaseLost("markCompensating") { try await store.markCompensating(lease: lease) }
            await expectLeaseLost("finish") { try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "0"))) }
            await expectLeaseLost("release") { try await store.release(lease, readyAt: nil) }
        }
        let instance = try #require(try await store.instance("i"))
        #expect(instance.status == .running)
        #expect(instance.leaseOwner == "worker-b")
        #expect(try await store.history(of: "i").map(\.stepID) == ["a:1"])

        // The live owner writes on.
        try await store.append(completed("i", "a:2", "2"), lease: fresh)
        try await store.finishInstance(lease: fresh, with: .completed(JSONPayload(json: "2")))
        #expect(try await store.instance("i")?.status == .completed)
    }

    static func finishedInstanceRefusesWrites(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "done"))
        try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "\"first\"")))
        // A context that escaped its run (a stray Task) still holds the lease value.
        await expectLeaseLost("append after finish") { try await store.append(completed("done", "late:1", "1"), lease: lease) }
        await expectLeaseLost("finish twice") {
            try await store.finishInstance(lease: lease, with: .failed(ErrorRecord(type: "E", message: "late")))
        }
        let instance = try #require(try await store.instance("done"))
        #expect(instance.status == .completed)
        #expect(instance.output?.json == "\"first\"")
        #expect(instance.error == nil)
        #expect(try await store.history(of: "done").isEmpty)
        #expect(try await claim(store, owner: "worker-b").isEmpty, "a finished instance is never claimed")
    }

    static func claimsAreExclusive(_ store: any Store) async throws {
        for index in 0..<60 {
            _ = try await create(store, "c\(index)", leasedTo: nil)
        }
        let claims = try await withThrowingTaskGroup(of: [ClaimedInstance].self) { group in
            for worker in 0..<8 {
                group.addTask { try await claim(store, owner: "worker-\(worker)", limit: 10) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let ids = claims.flatMap { $0.map(\.instance.instanceID) }
        #expect(Set(ids).count == ids.count, "an instance was claimed twice")
        #expect(claims.allSatisfy { $0.count <= 10 })
        #expect(ids.count == 60, "8 claims of 10 take all 60")
        for claim in claims {
            for claimed in claim {
                #expect(try await store.instance(claimed.instance.instanceID)?.leaseOwner == claimed.lease.owner)
            }
        }
        #expect(try await claim(store, owner: "late").isEmpty)
    }

    static func claimSkips(_ store: any Store) async throws {
        _ = try await create(store, "leased")
        let done = try #require(try await create(store, "done"))
        try await store.finishInstance(lease: done, with: .completed(JSONPayload(json: "1")))
        let later = try #require(try await create(store, "later"))
        try await store.release(later, readyAt: Date().addingTimeInterval(3600))
        _ = try await create(store, "other-workflow", workflow: "unregistered", leasedTo: nil)
        _ = try await create(store, "ready", leasedTo: nil)
        let compensating = try #require(try await create(store, "compensating"))
        try await store.markCompensating(lease: compensating)
        try await store.release(compensating, readyAt: nil)

        let claimed = try await claim(store, owner: "worker-b", limit: 10)
        #expect(Set(claimed.map(\.instance.instanceID)) == ["ready", "compensating"])
        #expect(claimed.first { $0.instance.instanceID == "compensating" }?.instance.status == .compensating)
        #expect(try await claim(store, owner: "worker-b", limit: 0).isEmpty)
    }

    static func renewReportsLostLeases(_ store: any Store) async throws {
        let kept = try #require(try await create(store, "kept"))
        let lost = try #require(try await create(store, "lost"))
        let finished = try #require(try await create(store, "finished"))
        try await store.finishInstance(lease: finished, with: .completed(JSONPayload(json: "1")))
        try await store.release(lost, readyAt: nil)
        _ = try await claim(store, owner: "worker-b")

        let reported = try await store.renew([kept, lost, finished], for: .seconds(30))
        #expect(reported == ["lost", "finished"])
        #expect(try await store.renew([], for: .seconds(30)).isEmpty)
        // The kept lease still writes.
        try await store.append(completed("kept", "a:1", "1"), lease: kept)
    }

    static func releaseMakesReadyAgain(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "r"))
        try await store.append(completed("r", "a:1", "1"), lease: lease)
        try await store.release(lease, readyAt: nil)
        #expect(try await store.instance("r")?.leaseOwner == nil)
        let first = try await claim(store, owner: "worker-b")
        #expect(first.map(\.instance.instanceID) == ["r"])
        let second = try #require(first.first?.lease)
        #expect(second.token > lease.token)

        // Released until later: not claimable before then.
        let until = Date().addingTimeInterval(3600)
        try await store.release(second, readyAt: until)
        let waiting = try #require(try await store.instance("r"))
        #expect(abs((waiting.readyAt ?? .distantPast).timeIntervalSince(until)) < 0.01)
        #expect(try await claim(store, owner: "worker-c").isEmpty)
        // History is untouched by leases changing hands.
        #expect(try await store.history(of: "r").map(\.stepID) == ["a:1"])
    }

    static func paginationAndCounts(_ store: any Store) async throws {
        for index in 0..<25 {
            let lease = try #require(try await create(store, String(format: "p%02d", index), workflow: index % 5 == 0 ? "five" : "w"))
            if index % 2 == 0 {
                try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "\(index)")))
            }
        }
        var seen: [String] = []
        var cursor: InstanceCursor?
        var pages = 0
        repeat {
            let page = try await store.instances(matching: InstanceQuery(limit: 10, after: cursor))
            seen += page.instances.map(\.instanceID)
            cursor = page.nextCursor
            pages += 1
            #expect(page.instances.count <= 10)
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen.count == 25)
        #expect(Set(seen).count == 25, "no instance appears on two pages")
        let all = try await store.instances(matching: InstanceQuery(limit: 100)).instances
        #expect(all.map(\.instanceID) == seen, "pages follow the newest-first order")
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt })

        let completed = try await store.instances(matching: InstanceQuery(status: .completed, limit: 100)).instances
        #expect(completed.count == 13)
        #expect(completed.allSatisfy { $0.status == .completed })
        let five = try await store.instances(matching: InstanceQuery(workflowName: "five", limit: 100)).instances
        #expect(five.count == 5)
        let notFive = try await store.instances(matching: InstanceQuery(excludingWorkflowNames: ["five"], limit: 100)).instances
        #expect(notFive.count == 20 && notFive.allSatisfy { $0.workflowName == "w" })

        #expect(try await store.statusCounts(matching: InstanceQuery()) == [.completed: 13, .running: 12])
        #expect(try await store.statusCounts(matching: InstanceQuery(workflowName: "five")) == [.completed: 3, .running: 2])
        #expect(try await store.statusCounts(matching: InstanceQuery(status: .completed, workflowName: "five")) == [.completed: 3, .running: 2],
                "counts ignore the status filter: they are what the status menu offers")
        #expect(try await store.statusCounts(matching: InstanceQuery(workflowName: "none")).isEmpty)

        // A time range: created at or after `from`, before `before`.
        let newest = try #require(all.first).createdAt
        let oldest = try #require(all.last).createdAt
        #expect(try await store.instances(matching: InstanceQuery(limit: 100, createdFrom: oldest)).instances.count == 25)
        #expect(try await store.instances(matching: InstanceQuery(limit: 100, createdBefore: oldest)).instances.isEmpty)
        #expect(try await store.instances(matching: InstanceQuery(limit: 100, createdFrom: newest.addingTimeInterval(0.001))).instances.isEmpty)
        let range = try await store.instances(matching: InstanceQuery(limit: 100, createdFrom: oldest, createdBefore: newest)).instances
        #expect(range.allSatisfy { $0.createdAt >= oldest && $0.createdAt < newest } && range.count < 25)
        #expect(try await store.statusCounts(matching: InstanceQuery(createdBefore: oldest)).isEmpty, "counts follow the time range")
    }

    static func oneOutcomePerStep(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "o"))
        try await store.append(completed("o", "a:1", "1"), lease: lease)
        do {
            try await store.append(completed("o", "a:1", "2"), lease: lease)
            Issue.record("a second outcome for one step was accepted")
        } catch {}
        // Failed attempts are not outcomes: several per step, then one outcome.
        for attempt in 1...2 {
            try await store.append(
                HistoryEvent(
                    instanceID: "o", stepID: "b:1", position: nil, name: "b", kind: .attemptFailed,
                    payload: JSONPayload(json: "{}"), error: ErrorRecord(type: "E", message: "try \(attempt)"),
                    retry: RetryMetadata(totalAttempts: attempt, totalDurationMilliseconds: 0, exhausted: false, lastError: nil, errors: [])
                ),
                lease: lease
            )
        }
        try await store.append(completed("o", "b:1", "3"), lease: lease)

        // Concurrent appends, one a duplicate: it fails alone.
        let results = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for index in 0..<32 {
                let step = index == 15 ? "a:1" : "c:\(index)"
                group.addTask {
                    do {
                        try await store.append(completed("o", step, "\(index)"), lease: lease)
                        return (step, true)
                    } catch {
                        return (step, false)
                    }
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(results["a:1"] == false)
        #expect(results.filter(\.value).count == 31)
        let history = try await store.history(of: "o")
        #expect(history.filter { $0.stepID == "a:1" }.map { $0.payload?.json } == ["1"], "the first outcome stands")
        #expect(history.filter { $0.stepID == "b:1" }.map(\.kind) == [.attemptFailed, .attemptFailed, .activityCompleted])
        #expect(history.count == 1 + 3 + 31)
    }

    static func signalsAnnounce(_ store: any Store) async throws {
        let clock = ContinuousClock()
        // A signal that fired while nobody waited is remembered: these waits return at once. (The
        // bounds are far apart so that a loaded machine cannot blur "woken" and "timed out".)
        _ = try await create(store, "ready", leasedTo: nil)
        var started = clock.now
        await store.wakeUps.wait(upTo: .seconds(60))
        #expect(clock.now - started < .seconds(30), "creating a ready instance did not wake claimers")

        let claimed = try #require(try await claim(store, owner: "worker-b").first)
        try await store.release(claimed.lease, readyAt: nil)
        started = clock.now
        await store.wakeUps.wait(upTo: .seconds(60))
        #expect(clock.now - started < .seconds(30), "a release did not wake claimers")

        let lease = try #require(try await create(store, "done"))
        let watch = store.outcomes.watch("done")
        defer { watch.end() }
        try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "1")))
        started = clock.now
        await watch.wait(upTo: .seconds(60))
        #expect(clock.now - started < .seconds(30), "finishing did not announce the instance's outcome")
    }

    /// Released instances wait for their `readyAt` on the claimer's clock (`readyBy`): claims take
    /// the due ones, earliest first, before ready ones; `nextReadyAt` names the next deadline.
    static func waitersByDeadline(_ store: any Store) async throws {
        let base = Date(timeIntervalSince1970: 4_000_000_000)   // far from the wall clock: readyBy decides
        var leases: [String: Lease] = [:]
        for id in ["ready", "soon", "later", "other-workflow"] {
            leases[id] = try #require(try await create(store, id, workflow: id == "other-workflow" ? "v" : "w"))
        }
        try await store.release(leases["soon"]!, readyAt: base.addingTimeInterval(10))
        try await store.release(leases["later"]!, readyAt: base.addingTimeInterval(20))
        try await store.release(leases["other-workflow"]!, readyAt: base.addingTimeInterval(5))
        try await store.release(leases["ready"]!, readyAt: nil)

        #expect(try await store.nextReadyAt(after: base, workflowNames: ["w"]) == base.addingTimeInterval(10))
        #expect(try await store.nextReadyAt(after: base.addingTimeInterval(10), workflowNames: ["w"]) == base.addingTimeInterval(20))
        #expect(try await store.nextReadyAt(after: base.addingTimeInterval(20), workflowNames: ["w"]) == nil)
        #expect(try await store.nextReadyAt(after: base, workflowNames: ["v"]) == base.addingTimeInterval(5))
        #expect(try await store.waitingCount(at: base) == 3, "soon, later and other-workflow wait; ready does not")
        #expect(try await store.waitingCount(at: base.addingTimeInterval(15)) == 1)

        let beforeAnyDeadline = try await claim(store, owner: "worker-b", readyBy: base)
        #expect(beforeAnyDeadline.map(\.instance.instanceID) == ["ready"])
        let claimed = try await claim(store, owner: "worker-b", limit: 1, readyBy: base.addingTimeInterval(25))
        #expect(claimed.map(\.instance.instanceID) == ["soon"], "the earliest due waiter first")
        #expect(claimed.first?.instance.lastClaimedAt != nil, "a claim records when the run began")
        let readyOne = try #require(try await store.instance("ready"))
        #expect(readyOne.lastClaimedAt.map { $0 >= readyOne.createdAt } == true, "claimed again by worker-b, after its creation")
        #expect(claimed.first?.instance.readyAt == nil, "a claim clears the deadline")
        let rest = try await claim(store, owner: "worker-b", readyBy: base.addingTimeInterval(25))
        #expect(rest.map(\.instance.instanceID) == ["later"])
        #expect(try await store.nextReadyAt(after: base, workflowNames: ["w"]) == nil, "claimed instances wait for nothing")
    }

    /// A cancellation is marked on unfinished instances (running ones learn it when their worker
    /// asks), makes a released waiter ready at once, and leaves finished ones as they are.
    static func cancellation(_ store: any Store) async throws {
        let running = try #require(try await create(store, "running"))
        let waiter = try #require(try await create(store, "waiter"))
        let done = try #require(try await create(store, "done"))
        try await store.release(waiter, readyAt: Date().addingTimeInterval(86_400))
        try await store.finishInstance(lease: done, with: .completed(JSONPayload(json: "1")))

        guard case .requested(let marked) = try await store.requestCancellation(of: "running") else {
            Issue.record("a running instance was not marked")
            return
        }
        #expect(marked.cancelRequested)
        guard case .requested = try await store.requestCancellation(of: "running") else {
            Issue.record("asking twice is no error")
            return
        }
        #expect(try await store.cancellationRequests(among: ["running", "waiter", "done", "unknown"]) == ["running"])
        try await store.append(completed("running", "a:1", "1"), lease: running)   // the run goes on until it looks

        guard case .requested = try await store.requestCancellation(of: "waiter") else {
            Issue.record("a waiting instance was not marked")
            return
        }
        let woken = try await claim(store, owner: "worker-b")
        #expect(woken.map(\.instance.instanceID) == ["waiter"], "a day early: cancelled waiters are ready at once")
        #expect(woken.first?.instance.cancelRequested == true)

        guard case .finished(let finished) = try await store.requestCancellation(of: "done") else {
            Issue.record("a finished instance was not reported as finished")
            return
        }
        #expect(finished.status == .completed)
        #expect(try await store.instance("done")?.cancelRequested == false, "a finished instance is left as it was")
        guard case .notFound = try await store.requestCancellation(of: "unknown") else {
            Issue.record("an unknown instance was not reported")
            return
        }
        try await store.finishInstance(lease: running, with: .cancelled(ErrorRecord(type: "WorkflowCancelledError", message: "cancelled")))
        #expect(try await store.instance("running")?.status == .cancelled)
        #expect(try await store.statusCounts(matching: InstanceQuery())[.cancelled] == 1)
    }
}

extension StoreConformance {
    static func wait(
        _ id: String, _ step: String, channel: String, kind: MessageKind, after: Int64? = nil, deadline: Date? = nil
    ) -> MessageWait {
        MessageWait(instanceID: id, stepID: step, position: 1, name: "edda.receive", channel: channel, kind: kind, afterSequence: after, deadline: deadline)
    }

    static func message(_ channel: String, _ kind: MessageKind, _ text: String, to target: String? = nil) -> OutgoingMessage {
        let event = CloudEvent(type: channel, source: "/conformance", data: Data("\"\(text)\"".utf8), dataContentType: "application/json")
        return OutgoingMessage(channel: channel, kind: kind, target: target, envelope: MessageEnvelope(event, sender: nil), retention: .seconds(3600))
    }

    static func data(_ event: HistoryEvent) -> String? {
        struct Delivered: Decodable { var message: MessageEnvelope }
        return try? event.payload?.decode(Delivered.self).message.data
    }

    /// A finishing child reports to its parent in the same transaction: into the parent's history if
    /// it waits for the report (released, waiting: it is made ready), kept for its next receive if not.
    static func childReports(_ store: any Store) async throws {
        func finishChild(_ id: String, of parent: String, output: String) async throws {
            let child = NewInstance(
                instanceID: id, workflowName: "c", serviceName: "conformance", input: JSONPayload(json: "[]"), parentInstanceID: parent
            )
            guard case .created(_, let lease?) = try await store.createInstance(child, leasedTo: leaseRequest) else {
                Issue.record("child \(id) was not created leased")
                return
            }
            try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: output)), reportingTo: parent)
        }
        func resultWait(_ parent: String, _ child: String) -> MessageWait {
            MessageWait(
                instanceID: parent, stepID: "edda.child:1/result", position: 2, name: "edda.child.result", channel: "edda.child/\(child)",
                kind: .event, afterSequence: nil, deadline: nil
            )
        }
        struct Report: Decodable { var message: MessageEnvelope }
        func output(_ event: HistoryEvent?) -> String? {
            struct Body: Decodable { var output: String? }
            guard let data = try? event?.payload?.decode(Report.self).message.data else { return nil }
            return try? JSONPayload(json: data).decode(Body.self).output
        }

        // Waiting, released: the report is its wait's outcome, and the parent is ready.
        let waiting = try #require(try await create(store, "waiting"))
        guard case .waiting(nil) = try await store.receive(resultWait("waiting", "waiting/c"), lease: waiting, now: Date()) else {
            Issue.record("nothing to receive yet")
            return
        }
        try await store.release(waiting, readyAt: .distantFuture)
        try await finishChild("waiting/c", of: "waiting", output: "42")
        let recorded = try await store.history(of: "waiting")
        #expect(recorded.map(\.stepID) == ["edda.child:1/result"], "the report went into the waiting parent's history")
        #expect(recorded.first?.kind == .messageReceived)
        #expect(output(recorded.first) == "42")
        #expect(try await store.instance("waiting")?.readyAt == nil, "the parent is ready")

        // Not waiting yet (still running its step): kept; its receive takes it.
        let busy = try #require(try await create(store, "busy"))
        try await finishChild("busy/c", of: "busy", output: "7")
        #expect(try await store.history(of: "busy").isEmpty)
        guard case .recorded(let taken) = try await store.receive(resultWait("busy", "busy/c"), lease: busy, now: Date()) else {
            Issue.record("the kept report was not taken")
            return
        }
        #expect(taken.kind == .messageReceived)
        #expect(output(taken) == "7")
    }

    /// A competing message waits for its consumer and is taken once; a publish delivers into a
    /// released waiter's history and wakes it; a delivery to a waiter still leased makes its release
    /// ready at once; direct messages and events sent to one instance are kept for it.
    static func messagesConsumedOnce(_ store: any Store) async throws {
        let a = try #require(try await create(store, "a"))
        let b = try #require(try await create(store, "b"))
        let now = Date()

        // Nobody waits: the message is kept; the first receive takes it, the second waits.
        guard case .published(let sequence?, let none) = try await store.publish(message("jobs", .competing, "one"), recordedAs: nil, now: now) else {
            Issue.record("a competing message nobody waits for is kept")
            return
        }
        #expect(none.isEmpty)
        #expect(sequence > 0)
        guard case .recorded(let taken) = try await store.receive(wait("a", "r:1", channel: "jobs", kind: .competing), lease: a, now: now) else {
            Issue.record("a stored competing message was not taken")
            return
        }
        #expect(taken.kind == .messageReceived)
        #expect(data(taken) == "\"one\"")
        guard case .waiting(nil) = try await store.receive(wait("b", "r:1", channel: "jobs", kind: .competing), lease: b, now: now) else {
            Issue.record("a message was taken twice")
            return
        }

        // b waits released; the next message goes into its history and makes it ready.
        try await store.release(b, readyAt: .distantFuture)
        guard case .published(_, let delivered) = try await store.publish(message("jobs", .competing, "two"), recordedAs: nil, now: now) else {
            Issue.record("publish failed")
            return
        }
        #expect(delivered == ["b"])
        #expect(try await store.history(of: "b").map(\.stepID) == ["r:1"])
        let woken = try await claim(store, owner: "worker-b")
        #expect(woken.map(\.instance.instanceID) == ["b"], "a delivery makes its waiter ready at once")
        let b2 = try #require(woken.first?.lease)
        // Asking again (the woken run replays to the wait) returns what was delivered, not a new message.
        guard case .recorded(let again) = try await store.receive(wait("b", "r:1", channel: "jobs", kind: .competing), lease: b2, now: now) else {
            Issue.record("the delivered record was not returned")
            return
        }
        #expect(data(again) == "\"two\"")

        // A delivery while the waiter is still leased: its release (at a far deadline) readies it at once.
        guard case .waiting = try await store.receive(wait("b", "r:2", channel: "jobs", kind: .competing), lease: b2, now: now) else {
            Issue.record("b did not wait")
            return
        }
        _ = try await store.publish(message("jobs", .competing, "three"), recordedAs: nil, now: now)
        try await store.release(b2, readyAt: .distantFuture)
        #expect(try await claim(store, owner: "worker-c").map(\.instance.instanceID) == ["b"], "the delivery during the run was not lost")

        // Direct messages and events to one instance are kept until it waits for them.
        guard case .published(_, let early) = try await store.publish(message("inbox", .direct, "hi", to: "a"), recordedAs: nil, now: now) else {
            Issue.record("a direct message was not kept")
            return
        }
        #expect(early.isEmpty)
        _ = try await store.publish(message("paid", .event, "ev", to: "a"), recordedAs: nil, now: now)
        guard case .recorded(let direct) = try await store.receive(wait("a", "r:2", channel: "inbox", kind: .direct), lease: a, now: now),
              case .recorded(let event) = try await store.receive(wait("a", "e:1", channel: "paid", kind: .event), lease: a, now: now)
        else {
            Issue.record("kept messages were not received")
            return
        }
        #expect(data(direct) == "\"hi\"")
        #expect(data(event) == "\"ev\"")
        #expect(try await store.publish(message("inbox", .direct, "x", to: "nobody"), recordedAs: nil, now: now) == .targetNotFound)
        try await store.finishInstance(lease: a, with: .completed(JSONPayload(json: "1")))
        #expect(try await store.publish(message("inbox", .direct, "x", to: "a"), recordedAs: nil, now: now) == .targetFinished(.completed))

        // A publish recorded as a workflow's step is fenced by its lease.
        let c = try #require(try await create(store, "c"))
        let step = HistoryEvent(instanceID: "c", stepID: "p:1", position: 1, name: "edda.publish", kind: .messagePublished, payload: JSONPayload(json: "{}"))
        _ = try await store.publish(message("jobs", .competing, "four"), recordedAs: (step, c), now: now)
        #expect(try await store.history(of: "c").map(\.kind) == [.messagePublished])
        var stale = c
        stale.token += 1
        await expectLeaseLost("a publish under a lost lease") {
            _ = try await store.publish(message("jobs", .competing, "five"), recordedAs: (step, stale), now: now)
        }
        await expectLeaseLost("a receive under a lost lease") {
            _ = try await store.receive(wait("c", "r:1", channel: "jobs", kind: .competing), lease: stale, now: now)
        }
    }

    /// Broadcast messages reach every waiter and stay for subscribers behind; an event sent to every
    /// waiter is dropped when none waits; a wait keeps its first deadline and times out into history;
    /// a channel keeps the mode of its first use.
    static func broadcastEventsAndModes(_ store: any Store) async throws {
        let a = try #require(try await create(store, "a"))
        let b = try #require(try await create(store, "b"))
        let c = try #require(try await create(store, "c"))
        let now = Date()

        let start = try await store.subscribe(to: "news", mode: .broadcast, now: now)
        for (id, lease) in [("a", a), ("b", b)] {
            guard case .waiting = try await store.receive(wait(id, "r:1", channel: "news", kind: .broadcast, after: start), lease: lease, now: now) else {
                Issue.record("\(id) did not wait")
                return
            }
        }
        guard case .published(let first?, let delivered) = try await store.publish(message("news", .broadcast, "n1"), recordedAs: nil, now: now) else {
            Issue.record("a broadcast message is kept")
            return
        }
        #expect(Set(delivered) == ["a", "b"])
        // c subscribed before n1 and was busy: it still gets n1, then waits for the next.
        guard case .recorded(let late) = try await store.receive(wait("c", "r:1", channel: "news", kind: .broadcast, after: start), lease: c, now: now),
              case .waiting = try await store.receive(wait("c", "r:2", channel: "news", kind: .broadcast, after: first), lease: c, now: now)
        else {
            Issue.record("a subscriber behind did not get the kept message")
            return
        }
        #expect(data(late) == "\"n1\"")

        // Events to every waiter: nobody waits, nothing is kept.
        #expect(try await store.publish(message("ping", .event, "p"), recordedAs: nil, now: now) == .published(sequence: nil, deliveredTo: []))
        guard case .waiting = try await store.receive(wait("a", "e:1", channel: "ping", kind: .event), lease: a, now: now) else {
            Issue.record("an event nobody waited for was kept")
            return
        }

        // Timeouts: the first deadline wins; past it, the wait's outcome is a timeout record.
        let deadline = now.addingTimeInterval(60)
        guard case .waiting(let kept?) = try await store.receive(
            wait("b", "e:1", channel: "ping", kind: .event, deadline: deadline), lease: b, now: now
        ) else {
            Issue.record("a wait with a deadline did not wait")
            return
        }
        #expect(abs(kept.timeIntervalSince(deadline)) < 0.002)
        guard case .waiting(let same?) = try await store.receive(
            wait("b", "e:1", channel: "ping", kind: .event, deadline: deadline.addingTimeInterval(3600)), lease: b, now: now.addingTimeInterval(1)
        ) else {
            Issue.record("the wait was lost")
            return
        }
        #expect(same == kept, "a replay does not move the deadline")
        guard case .recorded(let timedOut) = try await store.receive(
            wait("b", "e:1", channel: "ping", kind: .event), lease: b, now: deadline.addingTimeInterval(0.01)
        ) else {
            Issue.record("the wait did not time out")
            return
        }
        #expect(timedOut.kind == .waitTimedOut)
        #expect(try await store.publish(message("ping", .event, "late"), recordedAs: nil, now: now) == .published(sequence: nil, deliveredTo: ["a"]))

        // Modes: fixed by the first use.
        do {
            _ = try await store.publish(message("news", .competing, "x"), recordedAs: nil, now: now)
            Issue.record("a broadcast channel took a competing message")
        } catch let error as ChannelModeError {
            #expect(error.registered == .broadcast)
            #expect(error.requested == .competing)
        }
        await #expect(throws: ChannelModeError.self) {
            _ = try await store.receive(wait("c", "r:3", channel: "news", kind: .direct), lease: c, now: now)
        }
        await #expect(throws: ChannelModeError.self) { _ = try await store.subscribe(to: "news", mode: .competing, now: now) }
    }
}

extension StoreConformance {
    /// Cancelling an instance marks its unfinished descendants too; a competing message never goes
    /// to a waiter that is being cancelled or whose deadline has passed: it is kept for the next.
    static func cancellationAndWaiters(_ store: any Store) async throws {
        let parent = try #require(try await create(store, "parent"))
        guard case .created(_, nil) = try await store.createInstance(
            NewInstance(instanceID: "parent/child", workflowName: "w", serviceName: "conformance", input: JSONPayload(json: "[]"), parentInstanceID: "parent"),
            leasedTo: nil
        ) else {
            Issue.record("the child was not created")
            return
        }
        #expect(try await store.instance("parent/child")?.parentInstanceID == "parent")
        let now = Date()
        guard case .waiting = try await store.receive(wait("parent", "r:1", channel: "q", kind: .competing), lease: parent, now: now) else {
            Issue.record("the parent did not wait")
            return
        }
        try await store.release(parent, readyAt: .distantFuture)
        guard case .requested = try await store.requestCancellation(of: "parent") else {
            Issue.record("the parent was not marked")
            return
        }
        #expect(try await store.instance("parent/child")?.cancelRequested == true, "the child was marked with its parent")
        guard case .published(let kept, let delivered) = try await store.publish(message("q", .competing, "job"), recordedAs: nil, now: now) else {
            Issue.record("publish failed")
            return
        }
        #expect(delivered.isEmpty, "a waiter being cancelled took a job it will never do")
        #expect(kept != nil)
        #expect(try await store.history(of: "parent").isEmpty)

        // A waiter past its deadline (its timeout not recorded yet) is skipped too.
        let late = try #require(try await create(store, "late"))
        guard case .waiting = try await store.receive(
            wait("late", "r:1", channel: "q2", kind: .competing, deadline: now.addingTimeInterval(1)), lease: late, now: now
        ) else {
            Issue.record("late did not wait")
            return
        }
        guard case .published(_, let none) = try await store.publish(message("q2", .competing, "job"), recordedAs: nil, now: now.addingTimeInterval(2))
        else {
            Issue.record("publish failed")
            return
        }
        #expect(none.isEmpty, "a waiter past its deadline took the message")
    }
}

extension StoreConformance {
    /// An instance is found by a key (or dotted path) and value in one of its arguments.
    static func inputSearch(_ store: any Store) async throws {
        for (id, input) in [
            ("ada", #"[{"email": "ada@example.com", "address": {"city": "Oslo"}, "age": 36, "vip": true}]"#),
            ("bob", #"["first", {"email": "bob@example.com"}]"#),
            ("num", "[42]"),
        ] {
            _ = try await store.createInstance(new(id, input: input), leasedTo: nil)
        }
        func found(_ key: String, _ value: String) async throws -> [String] {
            var query = InstanceQuery()
            query.inputKey = key
            query.inputValue = value
            return try await store.instances(matching: query).instances.map(\.instanceID)
        }
        #expect(try await found("email", "ada@example.com") == ["ada"])
        #expect(try await found("email", "bob@example.com") == ["bob"], "any argument that is an object")
        #expect(try await found("address.city", "Oslo") == ["ada"])
        #expect(try await found("age", "36") == ["ada"], "numbers compare as their text")
        #expect(try await found("vip", "true") == ["ada"], "booleans as true or false")
        #expect(try await found("email", "nobody@example.com").isEmpty)
        var byEmail = InstanceQuery()
        byEmail.inputKey = "email"
        byEmail.inputValue = "ada@example.com"
        #expect(try await store.statusCounts(matching: byEmail) == [.running: 1], "counts follow the input filter")
    }

    static func historyPages(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "h"))
        for index in 1...30 {
            let step = "s:\(index)"
            if index % 10 == 0 {
                try await store.append(
                    HistoryEvent(instanceID: "h", stepID: step, position: index, name: "s", kind: .activityFailed, error: ErrorRecord(type: "E", message: "\(index)")),
                    lease: lease
                )
            } else {
                try await store.append(completed("h", step, position: index, "\(index)"), lease: lease)
            }
        }
        let all = try await store.history(of: "h")
        var paged: [HistoryEvent] = []
        var after: Int64 = 0
        while true {
            let page = try await store.history(of: "h", matching: HistoryQuery(after: after, limit: 7))
            #expect(page.count <= 7)
            guard let last = page.last else { break }
            paged += page
            after = last.sequence
        }
        #expect(paged.map(\.sequence) == all.map(\.sequence), "pages cover the history once, in order")
        let failed = try await store.history(of: "h", matching: HistoryQuery(kinds: HistoryEventKind.failures))
        #expect(failed.map(\.stepID) == ["s:10", "s:20", "s:30"])
        let failedAfter = try await store.history(of: "h", matching: HistoryQuery(after: failed[0].sequence, limit: 1, kinds: [.activityFailed]))
        #expect(failedAfter.map(\.stepID) == ["s:20"])
        #expect(try await store.history(of: "nobody", matching: HistoryQuery()).isEmpty)

        // Backwards: the latest records, then the pages before them, each in append order.
        var backwards: [HistoryEvent] = []
        var before = Int64.max
        while true {
            let page = try await store.history(of: "h", matching: HistoryQuery(before: before, limit: 7))
            #expect(page.count <= 7)
            #expect(page.map(\.sequence) == page.map(\.sequence).sorted(), "a page before a record is in append order")
            guard let first = page.first else { break }
            backwards = page + backwards
            before = first.sequence
        }
        #expect(backwards.map(\.sequence) == all.map(\.sequence), "pages backwards cover the history once")
        let latest = try await store.history(of: "h", matching: HistoryQuery(before: .max, limit: 3))
        #expect(latest.map(\.stepID) == ["s:28", "s:29", "s:30"])
        let between = try await store.history(of: "h", matching: HistoryQuery(after: all[1].sequence, before: all[5].sequence, limit: 10))
        #expect(between.map(\.stepID) == ["s:3", "s:4", "s:5"])
        let latestFailed = try await store.history(of: "h", matching: HistoryQuery(before: failed[2].sequence, limit: 1, kinds: [.activityFailed]))
        #expect(latestFailed.map(\.stepID) == ["s:20"])
    }
}

extension StoreConformance {
    static func forks(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "o"))
        try await store.append(completed("o", "a:1", position: 1, "1"), lease: lease)
        try await store.append(completed("o", "b:1", position: 2, "2"), lease: lease)
        try await store.append(completed("o", "c:1", position: 3, "3"), lease: lease)
        let original = try await store.history(of: "o")
        let cut = try #require(original.first { $0.stepID == "c:1" })
        guard case .created(let fork, let forkLease) = try await store.createFork(new("f"), of: "o", fromStep: "c:1", before: cut.sequence)
        else {
            Issue.record("the fork was not created")
            return
        }
        #expect(forkLease == nil)
        #expect(fork.status == .running && fork.leaseOwner == nil, "unleased and ready: a worker claims it")
        #expect(fork.forkedFrom == "o")
        #expect(fork.forkedFromStep == "c:1")
        let copied = try await store.history(of: "f")
        #expect(copied.map(\.stepID) == ["a:1", "b:1"])
        #expect(copied.map(\.payload) == original.prefix(2).map(\.payload))
        #expect(copied.map(\.position) == [1, 2])
        #expect(copied.map(\.recordedAt) == original.prefix(2).map(\.recordedAt))
        #expect(copied.allSatisfy { $0.instanceID == "f" })
        #expect(try await store.history(of: "o").map(\.sequence) == original.map(\.sequence), "the original is left as it is")
        #expect(try await claim(store, owner: "worker-b", queues: []).map(\.instance.instanceID) == ["f"])
        // An ID in use: nothing is written.
        guard case .existing = try await store.createFork(new("o"), of: "o", fromStep: "a:1", before: cut.sequence) else {
            Issue.record("a fork over an existing ID was inserted")
            return
        }
        #expect(try await store.history(of: "o").count == 3)
    }

    static func retryFromFailure(_ store: any Store) async throws {
        let lease = try #require(try await create(store, "f"))
        try await store.append(completed("f", "a:1", position: 1, "1"), lease: lease)
        try await store.append(
            HistoryEvent(
                instanceID: "f", stepID: "b:1", position: nil, name: "b", kind: .attemptFailed, payload: JSONPayload(json: "{}"),
                error: ErrorRecord(type: "E", message: "try 1"),
                retry: RetryMetadata(totalAttempts: 1, totalDurationMilliseconds: 0, exhausted: false, lastError: nil, errors: [])
            ),
            lease: lease
        )
        let failure = ErrorRecord(type: "TerminalError", message: "no")
        let attempts = RetryMetadata(totalAttempts: 2, totalDurationMilliseconds: 5, exhausted: true, lastError: failure, errors: [failure])
        try await store.append(
            HistoryEvent(instanceID: "f", stepID: "b:1", position: 2, name: "b", kind: .activityFailed, error: failure, retry: attempts), lease: lease
        )
        try await store.append(
            HistoryEvent(instanceID: "f", stepID: "compensate:a:1", position: nil, name: "undo", kind: .compensationCompleted), lease: lease
        )
        try await store.finishInstance(lease: lease, with: .failed(failure))
        let failedRecord = try #require(try await store.history(of: "f").first { $0.kind == .activityFailed })

        guard case .retried(let instance, let step) = try await store.retry("f", requestedBy: "operator (ticket 7)") else {
            Issue.record("a failed instance was not retried")
            return
        }
        #expect(step == "b:1")
        #expect(instance.status == .running)
        #expect(instance.error == nil)
        let history = try await store.history(of: "f")
        #expect(
            history.map(\.stepID) == ["a:1", "compensate:a:1", "b:1"],
            "the failure moved aside; the compensation's record stays, so that it never runs twice; the retry is recorded"
        )
        // The retry's record: who, when, which step, and the failure it moved to the archive.
        let retried = try #require(history.last)
        #expect(retried.kind == .retried && retried.name == "retry" && retried.position == nil && retried.error == nil)
        #expect(retried.sequence > failedRecord.sequence, "a new sequence number, after every record before it")
        #expect(abs(retried.recordedAt.timeIntervalSinceNow) < 60)
        let record = try #require(try retried.payload?.decode(RetryRecord.self))
        #expect(record.requestedBy == "operator (ticket 7)" && record.step == "b:1" && record.run == 1)
        #expect(record.compensationsRan == ["compensate:a:1"])
        let archived = try #require(record.failure)
        #expect(archived.sequence == failedRecord.sequence && archived.name == "b" && archived.archivedRecords == 2)
        #expect(archived.error == failure && archived.retry == attempts)
        #expect(archived.recordedAtMilliseconds == failedRecord.recordedAt.millisecondsSince1970)
        #expect(try await store.history(of: "f", matching: HistoryQuery(kinds: [.retried])).map(\.sequence) == [retried.sequence])

        let claimed = try await claim(store, owner: "worker-b")
        #expect(claimed.map(\.instance.instanceID) == ["f"], "ready again")
        guard case .notFailed = try await store.retry("f", requestedBy: "x") else {
            Issue.record("a running instance was retried")
            return
        }
        guard case .notFound = try await store.retry("nope", requestedBy: "x") else {
            Issue.record("an unknown instance was not reported")
            return
        }

        // It fails at the same step again, and is retried again: a second record, which the unique
        // index on (instance, step, attempt) takes; then it fails outside a step (no step to move).
        let again = try #require(claimed.first?.lease)
        try await store.append(HistoryEvent(instanceID: "f", stepID: "b:1", position: 2, name: "b", kind: .activityFailed, error: failure), lease: again)
        try await store.finishInstance(lease: again, with: .failed(failure))
        guard case .retried(_, "b:1"?) = try await store.retry("f", requestedBy: "cli") else {
            Issue.record("the second failure of the step was not retried")
            return
        }
        let third = try #require(try await claim(store, owner: "worker-c").first?.lease)
        try await store.append(completed("f", "b:1", position: 2, "2"), lease: third)
        try await store.finishInstance(lease: third, with: .failed(ErrorRecord(type: "E", message: "after the steps")))
        guard case .retried(_, nil) = try await store.retry("f", requestedBy: "cli") else {
            Issue.record("a failure outside a step was not retried, or a step was retried")
            return
        }
        let records = try await store.history(of: "f", matching: HistoryQuery(kinds: [.retried])).map { try #require(try $0.payload?.decode(RetryRecord.self)) }
        #expect(records.map(\.requestedBy) == ["operator (ticket 7)", "cli", "cli"])
        #expect(records.map(\.step) == ["b:1", "b:1", nil])
        #expect(records.last?.failure == nil)
        #expect(try await store.history(of: "f").map(\.kind).filter { $0 == .activityCompleted }.count == 2, "the step's outcome stays")
    }
}

extension StoreConformance {
    /// A child created while its parent's cancellation is pending, or after the parent finished, is
    /// born cancel-requested by the statement that creates it: a parent running on another worker
    /// hears of its cancellation only later, and may start a child in between. Other children are not.
    static func childOfAStoppingParent(_ store: any Store) async throws {
        func createChild(_ id: String, of parent: String) async throws -> WorkflowInstance? {
            let child = NewInstance(instanceID: id, workflowName: "c", serviceName: "conformance", input: JSONPayload(json: "[]"), parentInstanceID: parent)
            guard case .created(let instance, nil) = try await store.createInstance(child, leasedTo: nil) else {
                Issue.record("child \(id) was not created")
                return nil
            }
            return instance
        }
        _ = try #require(try await create(store, "cancelling"))
        guard case .requested = try await store.requestCancellation(of: "cancelling") else {
            Issue.record("the parent was not marked")
            return
        }
        let done = try #require(try await create(store, "done"))
        try await store.finishInstance(lease: done, with: .completed(JSONPayload(json: "1")))
        _ = try #require(try await create(store, "calm"))

        #expect(try await createChild("cancelling/late", of: "cancelling")?.cancelRequested == true, "the created instance says so")
        #expect(try await createChild("done/late", of: "done")?.cancelRequested == true)
        #expect(try await createChild("calm/child", of: "calm")?.cancelRequested == false, "a parent not asked to cancel")
        #expect(try await store.instance("cancelling/late")?.cancelRequested == true, "the stored row says so")
        #expect(
            try await store.cancellationRequests(among: ["cancelling/late", "done/late", "calm/child"]) == ["cancelling/late", "done/late"]
        )
        let claimed = try await claim(store, owner: "worker-b", workflows: ["c"])
        #expect(
            Dictionary(uniqueKeysWithValues: claimed.map { ($0.instance.instanceID, $0.instance.cancelRequested) })
                == ["cancelling/late": true, "done/late": true, "calm/child": false],
            "the worker that claims a child born cancel-requested runs its cancellation"
        )
    }

    /// Finishing an instance — completed, failed or cancelled, a child or not — clears a cancellation
    /// that was pending (it lost the race with the outcome); a cancellation asked for afterwards
    /// reports the instance finished and changes nothing.
    static func finishClearsCancellation(_ store: any Store) async throws {
        let error = ErrorRecord(type: "E", message: "stopped")
        let cases: [(id: String, parent: String?, outcome: InstanceOutcome, status: InstanceStatus)] = [
            ("won", nil, .completed(JSONPayload(json: "1")), .completed),
            ("lost", nil, .failed(error), .failed),
            ("stopped", nil, .cancelled(error), .cancelled),
            ("parent/child", "parent", .completed(JSONPayload(json: "2")), .completed),
        ]
        _ = try #require(try await create(store, "parent"))
        for (id, parent, outcome, status) in cases {
            guard case .created(_, let created) = try await store.createInstance(
                NewInstance(instanceID: id, workflowName: "w", serviceName: "conformance", input: JSONPayload(json: "[]"), parentInstanceID: parent),
                leasedTo: leaseRequest
            ), let lease = created else {
                Issue.record("\(id) was not created leased")
                continue
            }
            guard case .requested = try await store.requestCancellation(of: id) else {
                Issue.record("\(id) was not marked")
                continue
            }
            try await store.finishInstance(lease: lease, with: outcome, reportingTo: parent)
            let finished = try #require(try await store.instance(id))
            #expect(finished.status == status)
            #expect(finished.cancelRequested == false, "\(id): a finished instance has no cancellation pending")
            #expect(try await store.cancellationRequests(among: [id]).isEmpty, "\(id)")
            guard case .finished(let reported) = try await store.requestCancellation(of: id) else {
                Issue.record("a cancellation of finished \(id) was not reported as finished")
                continue
            }
            #expect(reported.status == status)
            let after = try #require(try await store.instance(id))
            #expect(after.cancelRequested == false && after.updatedAt == finished.updatedAt, "\(id): a late cancellation changed the row")
        }
    }
}

/// Whether a check's body ran to its end.
private final class Completion: Sendable {
    private let marked = Mutex(false)
    func mark() { marked.withLock { $0 = true } }
    var isMarked: Bool { marked.withLock { $0 } }
}

// MARK: - Reading what instances wait for

extension StoreConformance {
    /// A running instance parked on a wait is read as waiting, with what it waits for: an event, a
    /// channel message or a child from its wait row (with the deadline and timeout), a timer or a
    /// retry from its ready time and latest record. Executing, ready and finished instances wait for
    /// nothing. The status filter and the counts select waiting ones among the running.
    static func waitingInstances(_ store: any Store) async throws {
        let base = Date(timeIntervalSince1970: 4_000_000_000)   // whole milliseconds, far from the wall clock
        func park(_ id: String, _ wait: MessageWait) async throws {
            let lease = try #require(try await create(store, id))
            guard case .waiting(let deadline) = try await store.receive(wait, lease: lease, now: base) else {
                Issue.record("\(id): nothing to receive yet")
                return
            }
            try await store.release(lease, readyAt: deadline ?? .distantFuture)
        }
        try await park("event", wait("event", "edda.event:1", channel: "payment.completed", kind: .event, deadline: base.addingTimeInterval(300)))
        try await park("channel", wait("channel", "edda.receive:1", channel: "jobs", kind: .competing))
        try await park("parent", wait("parent", "edda.child:1/result", channel: "edda.child/parent/edda.child:1", kind: .event))

        let timer = try #require(try await create(store, "timer"))
        try await store.append(
            HistoryEvent(
                instanceID: "timer", stepID: "edda.sleep:1", position: 1, name: "edda.sleep", kind: .timerScheduled,
                payload: JSONPayload(json: "{\"deadline_ms\":\(base.addingTimeInterval(60).millisecondsSince1970)}")
            ),
            lease: timer
        )
        try await store.release(timer, readyAt: base.addingTimeInterval(60))

        let retry = try #require(try await create(store, "retry"))
        try await store.append(completed("retry", "reserve:1", position: 1, "1"), lease: retry)
        let schedule = AttemptRecord(
            attempt: 2, firstAttemptAtMilliseconds: base.millisecondsSince1970, nextAttemptAtMilliseconds: base.addingTimeInterval(8).millisecondsSince1970
        )
        try await store.append(
            HistoryEvent(
                instanceID: "retry", stepID: "charge:2", position: 2, name: "charge", kind: .attemptFailed, payload: try JSONPayload.encode(schedule),
                error: ErrorRecord(type: "Declined", message: "try later")
            ),
            lease: retry
        )
        try await store.release(retry, readyAt: base.addingTimeInterval(8))

        _ = try #require(try await create(store, "busy"))   // leased: executing
        let ready = try #require(try await create(store, "ready"))
        try await store.release(ready, readyAt: nil)
        let done = try #require(try await create(store, "done"))
        try await store.finishInstance(lease: done, with: .completed(JSONPayload(json: "1")))

        let event = try #require(try await store.instance("event"))
        #expect(event.status == .running, "as stored: running")
        #expect(event.displayStatus == .waiting)
        #expect(event.waitingFor == InstanceWait(
            kind: .event, awaited: "payment.completed", stepID: "edda.event:1", deadline: base.addingTimeInterval(300), since: base, timeout: .seconds(300)
        ))
        let channel = try #require(try await store.instance("channel")?.waitingFor)
        #expect(channel.kind == .channel && channel.awaited == "jobs")
        #expect(channel.deadline == nil && channel.timeout == nil, "no timeout: waits for as long as it takes")
        let child = try #require(try await store.instance("parent")?.waitingFor)
        #expect(child.kind == .child && child.awaited == "parent/edda.child:1", "the child's ID, not Edda's channel name")
        #expect(try await store.instance("timer")?.waitingFor == InstanceWait(
            kind: .timer, stepID: "edda.sleep:1", deadline: base.addingTimeInterval(60), since: try await store.history(of: "timer").first?.recordedAt
        ))
        let retried = try #require(try await store.instance("retry")?.waitingFor)
        #expect(retried.kind == .retry && retried.stepID == "charge:2" && retried.attempt == 2)
        #expect(retried.deadline == base.addingTimeInterval(8))
        for id in ["busy", "ready", "done"] {
            let instance = try #require(try await store.instance(id))
            #expect(instance.waitingFor == nil, "\(id) waits for nothing")
            #expect(instance.displayStatus != .waiting, "\(id)")
        }

        // A page carries the same; the filter and the counts tell waiting from running.
        let all = try await store.instances(matching: InstanceQuery(limit: 100)).instances
        #expect(all.first { $0.instanceID == "event" }?.waitingFor?.awaited == "payment.completed")
        #expect(all.first { $0.instanceID == "retry" }?.waitingFor?.kind == .retry)
        let waiting = try await store.instances(matching: InstanceQuery(status: .waiting, limit: 100)).instances
        #expect(Set(waiting.map(\.instanceID)) == ["event", "channel", "parent", "timer", "retry"])
        #expect(waiting.allSatisfy { $0.waitingFor != nil && $0.displayStatus == .waiting })
        let running = try await store.instances(matching: InstanceQuery(status: .running, limit: 100)).instances
        #expect(Set(running.map(\.instanceID)) == ["busy", "ready", "event", "channel", "parent", "timer", "retry"], "running includes waiting")
        #expect(try await store.statusCounts(matching: InstanceQuery()) == [.running: 7, .waiting: 5, .completed: 1])
        #expect(try await store.statusCounts(matching: InstanceQuery(workflowName: "none")).isEmpty)

        // The event comes: the wait row goes, the instance is ready, and waits for nothing.
        guard case .published(_, let deliveredTo) = try await store.publish(message("payment.completed", .event, "paid", to: "event"), recordedAs: nil, now: base) else {
            Issue.record("the event was not published")
            return
        }
        #expect(deliveredTo == ["event"])
        let woken = try #require(try await store.instance("event"))
        #expect(woken.waitingFor == nil && woken.displayStatus == .running)
        #expect(try await store.statusCounts(matching: InstanceQuery()) == [.running: 7, .waiting: 4, .completed: 1])

        // A cancellation makes a waiter ready at once: it waits no more (its run will stop it).
        guard case .requested = try await store.requestCancellation(of: "channel") else {
            Issue.record("the waiting instance was not marked")
            return
        }
        #expect(try await store.instance("channel")?.waitingFor == nil)
        #expect(try await store.statusCounts(matching: InstanceQuery())[.waiting] == 3)
    }

    /// A page's previous cursor leads back to the page before it, newest first, and the first page
    /// has none; the parent filter lists an instance's children.
    static func pagingBackAndChildren(_ store: any Store) async throws {
        for index in 0..<7 { _ = try #require(try await create(store, String(format: "i%02d", index))) }
        let first = try await store.instances(matching: InstanceQuery(limit: 3))
        #expect(first.previousCursor == nil, "the first page has nothing before it")
        let second = try await store.instances(matching: InstanceQuery(limit: 3, after: first.nextCursor))
        let third = try await store.instances(matching: InstanceQuery(limit: 3, after: second.nextCursor))
        #expect(third.instances.count == 1 && third.nextCursor == nil)
        var back = InstanceQuery(limit: 3)
        back.before = third.previousCursor
        let secondAgain = try await store.instances(matching: back)
        #expect(secondAgain.instances.map(\.instanceID) == second.instances.map(\.instanceID), "newest first, as the page was")
        back.before = secondAgain.previousCursor
        let firstAgain = try await store.instances(matching: back)
        #expect(firstAgain.instances.map(\.instanceID) == first.instances.map(\.instanceID))
        #expect(firstAgain.previousCursor == nil, "back at the first page")
        #expect(firstAgain.nextCursor != nil)

        let parent = new("i00")
        for child in ["i00/a:1", "i00/b:2"] {
            let outcome = try await store.createInstance(
                NewInstance(instanceID: child, workflowName: "c", serviceName: "conformance", input: JSONPayload(json: "[]"), parentInstanceID: parent.instanceID),
                leasedTo: leaseRequest
            )
            guard case .created = outcome else {
                Issue.record("child \(child) was not created")
                return
            }
        }
        var children = InstanceQuery(limit: 10)
        children.parentInstanceID = "i00"
        #expect(Set(try await store.instances(matching: children).instances.map(\.instanceID)) == ["i00/a:1", "i00/b:2"])
        #expect(try await store.statusCounts(matching: children) == [.running: 2])
        children.parentInstanceID = "i01"
        #expect(try await store.instances(matching: children).instances.isEmpty)
    }
}
