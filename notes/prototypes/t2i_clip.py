import time, sys, torch, torch.nn.functional as F
torch.set_num_threads(1)
from course_utils import data
from course_utils.text_to_image import captions as C
from course_utils.text_to_image.clip import Clip
from course_utils.text_to_image.functions import clip_loss, zero_shot_classify
EPOCHS = int(sys.argv[1]); BATCH = int(sys.argv[2]); SHIFT = int(sys.argv[3])
x, y = data.mnist("train"); xt, yt = data.mnist("test")
ids = C.encode(C.captions(x, y)); ids_t = C.encode(C.captions(xt, yt))
torch.manual_seed(0)
model = Clip()
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
g = torch.Generator().manual_seed(0)
def shift(b):
    if not SHIFT: return b
    p = F.pad(b, (SHIFT,) * 4)
    dx, dy = torch.randint(0, 2 * SHIFT + 1, (2,), generator=g).tolist()
    return p[:, :, dy:dy + 28, dx:dx + 28]
t0 = time.perf_counter()
steps = EPOCHS * (len(x) // BATCH); step = 0
for epoch in range(EPOCHS):
    perm = torch.randperm(len(x), generator=g)
    for i in range(0, len(x) - BATCH + 1, BATCH):
        j = perm[i:i + BATCH]
        for gr in opt.param_groups: gr["lr"] = 2e-3 * 0.5 * (1 + torch.cos(torch.tensor(step / steps * 3.14159))).item()
        loss = clip_loss(model.encode_image(shift(x[j])), model.encode_text(ids[j]), model.logit_scale())
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
    print(epoch, round(loss.item(), 3), round(model.logit_scale().item(), 1), flush=True)
print("train s", round(time.perf_counter() - t0))
model.eval()
with torch.no_grad():
    img = model.encode_image(xt)
    single = model.encode_text(C.encode([C.caption(d, 1, 1) for d in range(10)]))
    ens = torch.stack([F.normalize(model.encode_text(C.encode([C.caption(d, a, b) for a in range(3) for b in range(3)])), dim=-1).mean(0) for d in range(10)])
    print("zero-shot single prompt", (zero_shot_classify(img, single) == yt).float().mean().item())
    print("zero-shot ensemble", (zero_shot_classify(img, ens) == yt).float().mean().item())
    # retrieval: caption -> image recall@1 among test set (any image with identical caption counts)
    txt = model.encode_text(ids_t)
    sims = F.normalize(txt, dim=-1) @ F.normalize(img, dim=-1).T
    best = sims.argmax(-1)
    print("recall@1 exact image", (best == torch.arange(len(xt))).float().mean().item(), "same caption", (ids_t[best] == ids_t).all(-1).float().mean().item())
    s, t = C.attributes(xt)
    caps9 = C.encode([C.caption(d, a, b) for d in range(10) for a in range(3) for b in range(3)])
    pred = zero_shot_classify(img, model.encode_text(caps9))
    print("zero-shot 90-way caption", (pred == yt * 9 + s * 3 + t).float().mean().item(), "slant", (pred // 3 % 3 == s).float().mean().item(), "thick", (pred % 3 == t).float().mean().item())
torch.save(model.state_dict(), "/tmp/clip40.pt")
