// Live libpcap capture for slbctl's native addon (capture.cc).
#pragma once
#include <napi.h>

// Adds the Capture class to the addon's exports.
void InitCapture(Napi::Env env, Napi::Object exports);
