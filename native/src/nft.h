#pragma once
#include <napi.h>

// Registers nftRun (nft.cc): nftables scripts run in process through libnftables.
void InitNft(Napi::Env env, Napi::Object exports);
