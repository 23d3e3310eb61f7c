"""Prototype: text-conditioned latent diffusion in vqvae_mnist's z_e space."""
import copy, math, sys, time, torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(int(sys.argv[5]))
from course_utils import checkpoints, data, metrics
from course_utils.diffusion import alpha_bar_of, betas_from, DDPM_SCHEDULE, q_sample, sample_ddim, timestep_embedding, ResBlock
from course_utils.vqvae import VQVAE
from course_utils.text_to_image import captions as C
from course_utils.text_to_image.clip import Clip
from course_utils.text_to_image.functions import cross_attention, guided_eps, latent_scale

STEPS, WIDTH, LR = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
SCALES = [float(s) for s in sys.argv[4].split(",")]
DEPTH = int(sys.argv[7]) if len(sys.argv) > 7 else 3

class CrossAttention(nn.Module):
    def __init__(self, d, c, heads):
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(8, d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False), nn.Linear(c, d, bias=False),
                                          nn.Linear(c, d, bias=False), nn.Linear(d, d, bias=False))
    def forward(self, h, context, mask):
        b, d, H, W = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)  # [b, HW, d]
        y = cross_attention(x, context, self.q.weight.T, self.k.weight.T, self.v.weight.T, self.o.weight.T, self.heads, mask)
        return h + y.transpose(1, 2).reshape(b, d, H, W)

class SelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(8, d)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
    def forward(self, h):
        b, d, H, W = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).view(b, H * W, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, H * W, d)
        return h + self.o(y).transpose(1, 2).reshape(b, d, H, W)

class LatentUnet(nn.Module):
    def __init__(self, channels=16, width=96, context=64, heads=4, depth=3):
        super().__init__()
        self.width = width
        self.temb = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, 4 * width))
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.res = nn.ModuleList(ResBlock(width, width, 4 * width) for _ in range(depth))
        self.sa = nn.ModuleList(SelfAttention(width, heads) for _ in range(depth))
        self.ca = nn.ModuleList(CrossAttention(width, context, heads) for _ in range(depth))
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight); nn.init.zeros_(self.out[-1].bias)
    def forward(self, z, t, context, mask):
        emb = self.temb(timestep_embedding(t, self.width))
        h = self.inp(z)
        for res, sa, ca in zip(self.res, self.sa, self.ca):
            h = ca(sa(res(h, emb)), context, mask)
        return self.out(h)

torch.manual_seed(0)
sys.argv_ae = sys.argv[6] if len(sys.argv) > 6 else "vq"
if sys.argv_ae == "vq":
    vq = checkpoints.load_pretrained("vqvae_mnist").eval()
    CH = 16
    enc = lambda im: vq.encoder(im)
    dec = lambda zz: torch.sigmoid(vq.decoder(vq.quantize(zz)[0]))
else:
    import importlib.util
    sys.argv_saved = sys.argv
    CH = int(sys.argv_ae)
    src = open("/tmp/t2i_ae.py").read().split("x, y = data.mnist")[0].replace("C_LAT, EPOCHS, BETA = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])", f"C_LAT = {CH}")
    exec(src)
    ae = KLAE(); ae.load_state_dict(torch.load(f"/tmp/ae_{CH}.pt")); ae.eval()
    enc = lambda im: ae.encode(im)[0]
    dec = lambda zz: torch.sigmoid(ae.dec(zz))
clip = Clip(); clip.load_state_dict(torch.load("/tmp/clip40.pt")); clip.eval()
x, y = data.mnist("train"); xt, yt = data.mnist("test")
with torch.no_grad():
    z = enc(x)
    scale = latent_scale(z)
    z = z * scale
    ids = C.encode(C.captions(x, y))
    ctx, _ = clip.text(ids)
    empty = C.encode([""])
    ctx_empty, _ = clip.text(empty)
PAD = C.WORDS.index("[PAD]")
mask = ids != PAD
print("latent scale", scale, "z", tuple(z.shape))
T = 1000
ab = alpha_bar_of(betas_from(DDPM_SCHEDULE))
net = LatentUnet(channels=CH, width=WIDTH, depth=DEPTH)
ema = copy.deepcopy(net)
print("params", sum(p.numel() for p in net.parameters()))
opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.0)
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
B = 128
for step in range(STEPS):
    j = torch.randint(len(z), (B,), generator=g)
    drop = torch.rand(B, generator=g) < 0.1
    c = torch.where(drop[:, None, None], ctx_empty.expand(B, -1, -1), ctx[j])
    m = torch.where(drop[:, None], empty.expand(B, -1) != PAD, mask[j])
    t = torch.randint(T, (B,), generator=g)
    noise = torch.randn(z[j].shape, generator=g)
    loss = F.mse_loss(net(q_sample(z[j], t, noise, ab), t, c, m), noise)
    for gr in opt.param_groups: gr["lr"] = LR * min(1, (step + 1) / 200)
    opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        decay = min(0.999, (1 + step) / (10 + step))
        for pe, p in zip(ema.parameters(), net.parameters()): pe.lerp_(p, 1 - decay)
    if step % 2000 == 1999: print(step + 1, round(loss.item(), 4), round(time.perf_counter() - t0), flush=True)
print("train s", round(time.perf_counter() - t0))
torch.save(ema.state_dict(), f"/tmp/ldm_ema_{sys.argv_ae}.pt")
# evaluation: prompts = the test split's captions
test_caps = C.captions(xt, yt)
tids = C.encode(test_caps)
with torch.no_grad():
    tctx, _ = clip.text(tids)
tmask = tids != PAD
s_true, th_true = C.attributes(xt)
for s in SCALES:
    t1 = time.perf_counter()
    def eps_model(zt, tt):
        n = len(zt)
        e_c = ema(zt, tt, tctx[:n], tmask[:n])
        if s == 1: return e_c
        e_u = ema(zt, tt, ctx_empty.expand(n, -1, -1), (empty != PAD).expand(n, -1))
        return guided_eps(e_c, e_u, s)
    torch.manual_seed(1)
    with torch.no_grad():
        zs = sample_ddim(eps_model, torch.randn(len(xt), CH, 7, 7), ab, 50) / scale
        imgs = dec(zs)
    digit = (metrics.classifier_predict(imgs) == yt).float().mean().item()
    sa, ta = C.attributes(imgs)
    print(f"scale {s}: digit {digit:.3f} slant {(sa == s_true).float().mean():.3f} thick {(ta == th_true).float().mean():.3f} FID {metrics.fid(imgs, xt):.1f} sample s {time.perf_counter() - t1:.0f}", flush=True)
    torch.save(imgs[:64], f"/tmp/ldm_samples_{sys.argv_ae}_{s}.pt")
