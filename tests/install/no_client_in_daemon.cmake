# Layering check: kvstored links kvstore::base and the transports, never the
# client API. Fails when `nm -C` finds a kvstore::Client (or the client's
# internal connection pool) symbol in the daemon binary.
#   cmake -DKVSTORED=<path> -DNM=<nm> -P no_client_in_daemon.cmake
if(NOT EXISTS "${KVSTORED}")
  message(FATAL_ERROR "kvstored not found at '${KVSTORED}': build the kvstored target first")
endif()
execute_process(COMMAND "${NM}" -C "${KVSTORED}"
  OUTPUT_VARIABLE symbols ERROR_VARIABLE nm_err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "'${NM} -C ${KVSTORED}' failed (${rc}): ${nm_err}")
endif()
# A daemon symbol must be there, or nm read nothing useful (a stripped binary).
if(NOT symbols MATCHES "kvstore::server::Store::")
  message(FATAL_ERROR "no kvstore::server::Store symbols in ${KVSTORED}: is the binary stripped? "
                      "The check needs symbols to prove the client is absent.")
endif()
string(REGEX MATCHALL "[^\n]*kvstore::(internal::)?Client(::|Conn|Options|TransferStats)[^\n]*"
       found "${symbols}")
list(LENGTH found n)
if(n GREATER 0)
  list(SUBLIST found 0 10 first)
  string(REPLACE ";" "\n  " first "${first}")
  message(FATAL_ERROR "kvstored contains ${n} client-API symbols; the daemon must link "
                      "kvstore::base and kvstore::transport, not kvstore::client. First ones:\n  ${first}")
endif()
message(STATUS "kvstored has no kvstore::Client symbols")
