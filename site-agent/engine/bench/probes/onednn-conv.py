"""Probe (issue 16): oneDNN (PyTorch 1.13's convolution backend, Debian python3-torch) on the compiled plan's
layer shapes, one thread, NCHW and channels-last; process CPU time, best of 8, forward and backward (data +
filter). Run: OMP_NUM_THREADS=1 /usr/bin/python3 site-agent/engine/bench/probes/onednn-conv.py"""
import torch, time
torch.set_num_threads(1)
for (cin,cout,hw) in [(16,16,64),(48,16,64),(96,32,32),(64,64,16)]:
    for fmt in ['nchw','nhwc']:
        x=torch.randn(8,cin,hw,hw,requires_grad=True); conv=torch.nn.Conv2d(cin,cout,3,padding=1,bias=False)
        if fmt=='nhwc': x=x.detach().to(memory_format=torch.channels_last).requires_grad_(); conv=conv.to(memory_format=torch.channels_last)
        y=conv(x); g=torch.randn_like(y)
        best={}
        for r in range(8):
            t=time.process_time(); y=conv(x); f=time.process_time()-t
            t=time.process_time(); y.backward(g); b=time.process_time()-t
            best['f']=min(best.get('f',9),f); best['b']=min(best.get('b',9),b)
        fl=2*8*hw*hw*cin*cout*9/1e6
        print(f"{cin}->{cout}@{hw} {fmt}: fwd {best['f']*1e3:.2f} ms cpu ({fl/best['f']/1e3:.0f} GFLOP/s) bwd(data+filter) {best['b']*1e3:.2f} ms ({2*fl/best['b']/1e3:.0f} GFLOP/s)")
