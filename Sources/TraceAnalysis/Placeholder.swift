enum TraceAnalysisPlaceholder {}
