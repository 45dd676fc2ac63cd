// N-API surface of the compiled plans (plan.h): `new PlanNet(paramCount)` holds parameters, gradients and
// optimizer state; `new PlanProgram(net, ops, arenaFloats)` validates and compiles an op list (Int32Array of
// kOpWords-int records, laid out by site-agent/engine/plan/plan-ops.ts); `program.run(x, labels, hyper)`
// executes it synchronously and returns the loss (NaN without a loss op).
#include "plan-binding.h"

#include <string>

#include "plan.h"

namespace fedsfda {
namespace {

constexpr int kOpWords = 46;

Napi::Value throw_range(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, "fedsfda_native plan: " + msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool is_f32(const Napi::Value& v) { return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array; }

class NetWrap : public Napi::ObjectWrap<NetWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PlanNet",
                       {InstanceMethod("size", &NetWrap::Size), InstanceMethod("setParams", &NetWrap::SetParams),
                        InstanceMethod("getParams", &NetWrap::GetParams), InstanceMethod("getGrads", &NetWrap::GetGrads),
                        InstanceMethod("setAnchor", &NetWrap::SetAnchor), InstanceMethod("resetOptimizer", &NetWrap::ResetOptimizer)});
  }
  explicit NetWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetWrap>(info) {
    if (info.Length() < 1 || !info[0].IsNumber()) { throw_range(info.Env(), "PlanNet(paramCount) needs a number"); return; }
    const double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 1 && n <= 1e9) || n != static_cast<double>(static_cast<long>(n))) { throw_range(info.Env(), "paramCount must be an integer in [1, 1e9]"); return; }
    net.params.assign(static_cast<size_t>(n), 0.f);
    net.grads.assign(static_cast<size_t>(n), 0.f);
  }
  Net net;

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(net.params.size())); }
  // (offset, Float32Array) range check shared by the copy methods.
  bool range(const Napi::CallbackInfo& info, size_t* off, Napi::Float32Array* a) {
    if (info.Length() < 2 || !info[0].IsNumber() || !is_f32(info[1])) { throw_range(info.Env(), "expected (offset, Float32Array)"); return false; }
    const double o = info[0].As<Napi::Number>().DoubleValue();
    *a = info[1].As<Napi::Float32Array>();
    if (!(o >= 0) || o + a->ElementLength() > net.params.size()) { throw_range(info.Env(), "range outside the parameter buffer"); return false; }
    *off = static_cast<size_t>(o);
    return true;
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    size_t off; Napi::Float32Array a;
    if (range(info, &off, &a)) std::copy(a.Data(), a.Data() + a.ElementLength(), net.params.begin() + off);
    return info.Env().Undefined();
  }
  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    size_t off; Napi::Float32Array a;
    if (range(info, &off, &a)) std::copy(net.params.begin() + off, net.params.begin() + off + a.ElementLength(), a.Data());
    return info.Env().Undefined();
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    size_t off; Napi::Float32Array a;
    if (range(info, &off, &a)) std::copy(net.grads.begin() + off, net.grads.begin() + off + a.ElementLength(), a.Data());
    return info.Env().Undefined();
  }
  Napi::Value SetAnchor(const Napi::CallbackInfo& info) {
    size_t off; Napi::Float32Array a;
    if (!range(info, &off, &a)) return info.Env().Undefined();
    if (net.anchor.size() != net.params.size()) net.anchor.assign(net.params.size(), 0.f);
    std::copy(a.Data(), a.Data() + a.ElementLength(), net.anchor.begin() + off);
    return info.Env().Undefined();
  }
  // resetOptimizer(slots): zeroes (allocating) `slots` state buffers (1: momentum, 2: Adam), frees the rest.
  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info) {
    const int slots = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    if (slots < 0 || slots > 2) return throw_range(info.Env(), "resetOptimizer(slots): slots must be 0, 1 or 2");
    net.m.assign(slots >= 1 ? net.params.size() : 0, 0.f);
    net.v.assign(slots >= 2 ? net.params.size() : 0, 0.f);
    net.anchor.clear();
    return info.Env().Undefined();
  }
};

View read_view(const int32_t* w) { return View{w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]}; }

class ProgramWrap : public Napi::ObjectWrap<ProgramWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PlanProgram", {InstanceMethod("run", &ProgramWrap::Run), InstanceMethod("read", &ProgramWrap::Read),
                                            InstanceMethod("arenaSize", &ProgramWrap::ArenaSize),
                                            InstanceMethod("profile", &ProgramWrap::Profile)});
  }
  explicit ProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProgramWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsTypedArray() || !info[2].IsNumber()) { throw_range(env, "PlanProgram(net, ops, arenaFloats)"); return; }
    NetWrap* nw = Napi::ObjectWrap<NetWrap>::Unwrap(info[0].As<Napi::Object>());
    auto words = info[1].As<Napi::TypedArray>();
    if (words.TypedArrayType() != napi_int32_array || words.ElementLength() % kOpWords != 0) { throw_range(env, "ops must be an Int32Array of whole op records"); return; }
    const int32_t* w = info[1].As<Napi::Int32Array>().Data();
    std::vector<Op> ops;
    for (size_t i = 0; i < words.ElementLength(); i += kOpWords) {
      const int32_t* r = w + i;
      Op op;
      op.code = static_cast<OpCode>(r[0]);
      op.k = r[1]; op.cin = r[2]; op.cout = r[3]; op.mode = r[4]; op.flags = r[5];
      op.w = r[6]; op.bias = r[7]; op.gamma = r[8]; op.beta = r[9]; op.rmean = r[10]; op.rvar = r[11];
      op.stats = r[12]; op.extra = r[13];
      op.a = read_view(r + 14); op.b = read_view(r + 22); op.c = read_view(r + 30); op.d = read_view(r + 38);
      if (op.code == OpCode::Input) input_len_ = static_cast<long>(op.a.N) * op.a.H * op.a.W * op.a.C;
      if (op.code == OpCode::Loss && op.mode != static_cast<int32_t>(LossKind::Entropy)) {
        labels_len_ = static_cast<long>(op.a.N) * op.a.H * op.a.W;
        classes_ = op.k;
      }
      ops.push_back(op);
    }
    const double arena = info[2].As<Napi::Number>().DoubleValue();
    if (!(arena >= 1 && arena < 2147483647.0)) { throw_range(env, "arenaFloats must be in [1, 2^31)"); return; }
    std::string err;
    if (!program_.init(&nw->net, std::move(ops), static_cast<long>(arena), &err)) { throw_range(env, err); return; }
    net_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RunCtx ctx;
    if (input_len_ > 0) {
      if (info.Length() < 1 || !is_f32(info[0]) || info[0].As<Napi::Float32Array>().ElementLength() != static_cast<size_t>(input_len_))
        return throw_range(env, "run: x must be a Float32Array of " + std::to_string(input_len_) + " values");
      ctx.x = info[0].As<Napi::Float32Array>().Data();
    }
    if (labels_len_ > 0) {
      if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
          info[1].As<Napi::Int32Array>().ElementLength() != static_cast<size_t>(labels_len_))
        return throw_range(env, "run: labels must be an Int32Array of " + std::to_string(labels_len_) + " class indices");
      const int32_t* l = info[1].As<Napi::Int32Array>().Data();
      for (long i = 0; i < labels_len_; ++i)
        if (l[i] < 0 || l[i] >= classes_) return throw_range(env, "run: label " + std::to_string(l[i]) + " at " + std::to_string(i) + " is not in [0, " + std::to_string(classes_) + ")");
      ctx.labels = l;
    }
    if (info.Length() < 3 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[2].As<Napi::Float64Array>().ElementLength() != kHyperCount)
      return throw_range(env, "run: hyper must be a Float64Array of " + std::to_string(kHyperCount) + " values");
    const double* h = info[2].As<Napi::Float64Array>().Data();
    for (int i = 0; i < kHyperCount; ++i) ctx.hyper[i] = h[i];
    if (!program_.run(ctx)) return throw_range(env, "out of memory growing the plan workspace");
    return Napi::Number::New(env, ctx.loss);
  }
  Napi::Value Read(const Napi::CallbackInfo& info) {
    if (info.Length() < 2 || !info[0].IsNumber() || !is_f32(info[1])) return throw_range(info.Env(), "read(offset, Float32Array)");
    const double o = info[0].As<Napi::Number>().DoubleValue();
    auto a = info[1].As<Napi::Float32Array>();
    if (!(o >= 0) || o + a.ElementLength() > program_.arena_size()) return throw_range(info.Env(), "read: range outside the arena");
    // The thread's workspace holds the last run's activations (read right after run()).
    const float* arena = thread_workspace().arena;
    std::copy(arena + static_cast<long>(o), arena + static_cast<long>(o) + a.ElementLength(), a.Data());
    return info.Env().Undefined();
  }
  // [op code, wall ms, process CPU ms] per op of the last run, in op order.
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    const auto& ms = program_.op_ms();
    const size_t n = ms.size() / 2;
    auto out = Napi::Float64Array::New(info.Env(), 3 * n);
    for (size_t i = 0; i < n; ++i) {
      out[3 * i] = static_cast<double>(program_.ops()[i].code);
      out[3 * i + 1] = ms[2 * i];
      out[3 * i + 2] = ms[2 * i + 1];
    }
    return out;
  }
  Napi::Value ArenaSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(program_.arena_size())); }

  Program program_;
  Napi::ObjectReference net_ref_;
  long input_len_ = 0, labels_len_ = 0;
  int classes_ = 0;
};

}  // namespace

void register_plan(Napi::Env env, Napi::Object exports) {
  exports.Set("PlanNet", NetWrap::Define(env));
  exports.Set("PlanProgram", ProgramWrap::Define(env));
}

}  // namespace fedsfda
