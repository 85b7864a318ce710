internal import CCurl
internal import CStackVaultShims
import Foundation

/// libcurl's global state, initialised once per process before the first handle.
private let curlGlobalInit: Void = {
    curl_global_init(Int(CURL_GLOBAL_DEFAULT))
}()

/// Owns one `CURL *` easy handle and the header list attached to it; frees both in deinit.
final class CurlEasy {
    let handle: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// libcurl writes the detail of a failure here (CURLOPT_ERRORBUFFER).
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init() throws {
        _ = curlGlobalInit
        guard let handle = curl_easy_init() else {
            throw HTTPTransportError(kind: .other, message: "libcurl could not create a handle", curlCode: -1)
        }
        self.handle = handle
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    deinit {
        curl_easy_cleanup(handle)
        if let headerList { curl_slist_free_all(headerList) }
        errorBuffer.deallocate()
    }

    func set(_ option: CURLoption, _ value: Int) throws {
        try check(CCurl_easy_setopt_long(handle, option, value))
    }

    func set(_ option: CURLoption, offset value: Int64) throws {
        try check(CCurl_easy_setopt_off_t(handle, option, curl_off_t(value)))
    }

    func set(_ option: CURLoption, _ value: String) throws {
        try check(value.withCString { CCurl_easy_setopt_string(handle, option, $0) })  // libcurl copies strings
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws {
        try check(CCurl_easy_setopt_pointer(handle, option, pointer))
    }

    func set(_ option: CURLoption, callback: CCurl_data_callback) throws {
        try check(CCurl_easy_setopt_data_callback(handle, option, callback))
    }

    func setProgress(_ callback: CCurl_xferinfo_callback) throws {
        try check(CCurl_easy_setopt_xferinfo_callback(handle, callback))
    }

    func setHeaders(_ headers: [String]) throws {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        for header in headers {
            guard let appended = curl_slist_append(headerList, header) else {
                throw HTTPTransportError(kind: .other, message: "libcurl could not add a header", curlCode: -1)
            }
            headerList = appended
        }
        try check(CCurl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList))
    }

    func responseCode() -> Int {
        var code: Int = 0
        _ = CCurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    /// Runs the transfer to its end on the calling thread.
    func perform() throws {
        errorBuffer[0] = 0
        try check(curl_easy_perform(handle))
    }

    /// Turns a libcurl return code into an `HTTPTransportError` with libcurl's own words.
    private func check(_ code: CURLcode) throws {
        guard code != CURLE_OK else { return }
        let detail = String(cString: errorBuffer)
        let summary = String(cString: curl_easy_strerror(code))
        let message = detail.isEmpty ? summary : "\(summary): \(detail)"
        let kind: HTTPTransportError.Kind
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT: kind = .timedOut
        case CURLE_ABORTED_BY_CALLBACK: kind = .cancelled
        case CURLE_WRITE_ERROR, CURLE_READ_ERROR: kind = .aborted
        default: kind = .other
        }
        throw HTTPTransportError(kind: kind, message: message, curlCode: Int(code.rawValue))
    }
}
