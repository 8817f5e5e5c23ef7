"""A tiny Market-1501 look-alike for the ReID tests: 8 training identities (2 cameras, 3 images
each), 6 test identities (query from camera 1, gallery from camera 2), a distractor and a junk
image, with Market-1501's file names. Usage: make_market_lookalike.py DIR"""
import os, sys, random
from PIL import Image
root = sys.argv[1]
rng = random.Random(3)
def person(pid, cam, i):
    # identity = colour of the torso and legs; camera = brightness; a little noise
    top = ((pid * 67) % 256, (pid * 131) % 256, (pid * 29) % 256)
    leg = ((pid * 17) % 256, (pid * 91) % 256, (pid * 53) % 256)
    im = Image.new("RGB", (16, 32))
    px = im.load()
    for y in range(32):
        for x in range(16):
            c = top if y < 16 else leg
            px[x, y] = tuple(min(255, max(0, v + cam * 10 + rng.randint(-20, 20))) for v in c)
    return im
def save(folder, pid, cam, i):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    name = "%s_c%ds1_%06d_%02d.jpg" % ("-1" if pid < 0 else "%04d" % pid, cam, i, 1)
    person(max(pid, 0), cam, i).save(os.path.join(root, folder, name), quality=95)
for pid in range(1, 9):          # 8 training identities, 2 cameras, 3 images each
    for cam in (1, 2):
        for i in range(3):
            save("bounding_box_train", pid, cam, i)
for pid in range(20, 26):        # 6 test identities: query from camera 1, gallery camera 2
    save("query", pid, 1, 0)
    for i in range(2):
        save("bounding_box_test", pid, 2, i)
save("bounding_box_test", 0, 1, 0)   # a distractor, kept in the gallery
save("bounding_box_test", -1, 1, 0)  # junk, dropped
