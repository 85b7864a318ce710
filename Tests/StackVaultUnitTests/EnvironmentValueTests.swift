import StackVaultCore
import Testing

@Suite struct EnvironmentValueTests {
    @Test func integersInRangeAndUnsetValues() throws {
        #expect(try EnvironmentValue.integer("STOP_TIMEOUT", "45", range: 0...3600) == 45)
        #expect(try EnvironmentValue.integer("STOP_TIMEOUT", " 0 ", range: 0...3600) == 0)
        #expect(try EnvironmentValue.integer("ZSTD_LEVEL", "-5", range: Int.min...Int.max) == -5)
        #expect(try EnvironmentValue.integer("STOP_TIMEOUT", nil, range: 0...3600) == nil)
        #expect(try EnvironmentValue.integer("STOP_TIMEOUT", "  ", range: 0...3600) == nil)
    }

    /// A wrong value is never replaced by the default (`STOP_TIMEOUT=abc` once meant 30 s).
    @Test(arguments: [
        (value: "abc", range: 0...3600, says: "from 0 to 3600"),
        (value: "30s", range: 0...3600, says: "from 0 to 3600"),
        (value: "1.5", range: 0...3600, says: "from 0 to 3600"),
        (value: "3601", range: 0...3600, says: "from 0 to 3600"),
        (value: "-1", range: 0...Int.max, says: "0 or more"),
        (value: "99999999999999999999", range: 0...Int.max, says: "0 or more"),
    ])
    func badIntegersNameTheVariableAndTheAcceptedValues(value: String, range: ClosedRange<Int>, says: String) {
        do {
            let number = try EnvironmentValue.integer("STOP_TIMEOUT", value, range: range, unit: "seconds")
            Issue.record("STOP_TIMEOUT='\(value)' was accepted as \(String(describing: number))")
        } catch let error as StackVaultError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.hasPrefix("STOP_TIMEOUT='\(value)' is not valid"), "\(error.message)")
            #expect(error.message.contains("whole number of seconds") && error.message.contains(says))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func choicesAreCaseInsensitiveAndAWrongOneListsThemAll() throws {
        let levels = ["trace", "debug", "info", "warning", "error"]
        #expect(try EnvironmentValue.choice("LOG_LEVEL", "DEBUG", from: levels) == "debug")
        #expect(try EnvironmentValue.choice("LOG_LEVEL", "", from: levels) == nil)
        #expect(try EnvironmentValue.choice("LOG_LEVEL", nil, from: levels) == nil)
        do {
            _ = try EnvironmentValue.choice("LOG_LEVEL", "verbose", from: levels)
            Issue.record("LOG_LEVEL=verbose was accepted")
        } catch let error as StackVaultError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message == "LOG_LEVEL='verbose' is not valid: use one of trace, debug, info, warning, error")
        }
    }
}
