package main

import (
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type logFlags struct {
	format *string
	level  *string
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	return &logFlags{
		format: fs.String("log-format", "console", "log format: console (for humans) or json (for machines)"),
		level:  fs.String("log-level", "info", "log level: debug, info, warn, error"),
	}
}

// logger builds the process logger writing to w. Log lines never carry
// plaintext addresses; components log hash ids or counts.
func (f *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(*f.level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch *f.format {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format: %q is not console or json", *f.format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
