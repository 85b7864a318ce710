import Logging
import StackVaultCore
import Synchronization
import Testing

@Suite struct CleanupStackTests {
    @Test func unwindRunsNewestFirstSkipsPoppedEntriesAndCollectsNotes() {
        let order = Mutex<[String]>([])
        var stack = CleanupStack()
        stack.push("open") { order.withLock { $0.append("open") }; return nil }
        stack.push("seal") { order.withLock { $0.append("seal") }; return "; kept" }
        stack.push("temp") { order.withLock { $0.append("temp") }; return nil }
        stack.pop("temp")
        #expect(stack.pending == ["seal", "open"])
        let notes = stack.unwind(logger: Logger(label: "test"))
        #expect(order.withLock { $0 } == ["seal", "open"])
        #expect(notes == ["; kept"])
        #expect(stack.pending.isEmpty)
        #expect(stack.unwind(logger: Logger(label: "test")).isEmpty, "a second unwind does nothing")
    }
}
