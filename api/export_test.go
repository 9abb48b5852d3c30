package api

// UnshareReads makes s build every document reload on its own, as before shared builds
// (for BenchmarkDocInfoCrowd's comparison).
func UnshareReads(s *Server) { s.infoReads = nil }
