// Registers the compiled-plan classes (PlanNet, PlanProgram) on the addon's exports.
#pragma once
#include <napi.h>

namespace fedsfda {
void register_plan(Napi::Env env, Napi::Object exports);
}
