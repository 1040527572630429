# Reference values for stats tests, computed independently of the Go code:
# chance to beat control by numerical integration of P(pB > pA) =
# ∫ f_B(x) F_A(x) dx on a fine grid (math.lgamma for the Beta densities),
# SRM p-values by the closed forms of the chi-square survival function for
# 1, 2 and 3 degrees of freedom, uplift by the Katz log interval.
import math
def lpdf(x,a,b):
    return (a-1)*math.log(x)+(b-1)*math.log1p(-x)-(math.lgamma(a)+math.lgamma(b)-math.lgamma(a+b))
def beat(cc,nc,c,n,N=400000):
    aA,bA,aB,bB=1+cc,1+nc-cc,1+c,1+n-c
    def msd(a,b): m=a/(a+b); return m, math.sqrt(a*b/((a+b)**2*(a+b+1)))
    mA,sA=msd(aA,bA); mB,sB=msd(aB,bB)
    lo=max(1e-12,min(mA-14*sA,mB-14*sB)); hi=min(1-1e-12,max(mA+14*sA,mB+14*sB))
    h=(hi-lo)/N
    FA=0.0; P=0.0
    # trapezoid on F_A cumulative, midpoint-ish
    prevA=math.exp(lpdf(lo,aA,bA))
    for i in range(1,N+1):
        x=lo+i*h
        pa=math.exp(lpdf(x,aA,bA))
        FA+= (prevA+pa)/2*h
        prevA=pa
        P+= math.exp(lpdf(x,aB,bB))*FA*h
    return P
def srm(obs,w):
    t=sum(obs); s=sum(w)
    x=sum((o-wi/s*t)**2/(wi/s*t) for o,wi in zip(obs,w))
    df=len(obs)-1
    if df==1: p=math.erfc(math.sqrt(x/2))
    elif df==2: p=math.exp(-x/2)
    elif df==3: p=math.erfc(math.sqrt(x/2))+math.sqrt(2*x/math.pi)*math.exp(-x/2)
    return x,p
def uplift(cc,nc,c,n):
    rr=(c/n)/(cc/nc); se=math.sqrt(1/c-1/n+1/cc-1/nc); z=1.959963984540054
    return rr-1, math.exp(math.log(rr)-z*se)-1, math.exp(math.log(rr)+z*se)-1
for case in [(100,1000,150,1000),(10,100,12,100),(0,10,1,10),(200,1000,180,1000),(50,1000,50,1000),(20000,100000,20300,100000),(99,1000,100,1000),(5,20,15,20)]:
    print("beat",case, repr(beat(*case)))
for o,w in [([1010,990],[1,1]),([5200,4800],[1,1]),([1050,2950,6000],[10,30,60]),([990,1010,1000],[1,1,1]),([260,240,250,250],[1,1,1,1]),([1000,1000],[1,1])]:
    print("srm",o,w, srm(o,w))
def wilson(c,n):
    z=1.959963984540054; p=c/n; d=1+z*z/n; m=(p+z*z/(2*n))/d
    h=z*math.sqrt(p*(1-p)/n+z*z/(4*n*n))/d
    return m-h, m+h
for c,n in [(100,1000),(150,1000),(0,10),(10,10),(81,263)]:
    print("wilson",c,n, wilson(c,n))
for case in [(100,1000,150,1000),(10,100,12,100),(200,1000,180,1000),(1,50,3,40)]:
    print("uplift",case, uplift(*case))
